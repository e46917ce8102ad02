/**
 * The reference for real-inference tests: greedy tokens generated straight from node-llama-cpp for a prompt string,
 * with no router, worker or engine of ours in between.
 */
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";

/** Greedy tokens generated straight from node-llama-cpp for a prompt string, as the reference. */
export async function directGreedy(modelPath: string, prompt: string, maxTokens: number) {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 1024, sequences: 1, threads: 1 });
  try {
    const promptTokens = model.tokenize(prompt, true);
    const generated: Token[] = [];
    for await (const token of context.getSequence().evaluate(promptTokens, { temperature: 0 })) {
      generated.push(token);
      if (generated.length >= maxTokens) break;
    }
    return { promptTokens: promptTokens.length, text: model.detokenize(generated) };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}
