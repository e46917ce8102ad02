/**
 * The real-inference baseline, as its own process: node-llama-cpp called directly on the same GGUF with the same
 * context shape (one sequence, 1 thread) and the same prompt tokens the GPU worker would evaluate (rendered with the
 * model's template outside the timed part), greedy. It loads the model, prints `{"ready": true}`, then answers each
 * JSON line on stdin (`{"prompt": "...", "maxTokens": N}`, a user message) with one JSON line: time to first token
 * (tokenizing and evaluating the prompt), to the last token, and the text, so the caller can interleave it with
 * requests through the router and check both paths did the same work. Like the worker's engine, the sequence keeps
 * its tokens and only re-evaluates past the longest shared prefix.
 *
 *   deno run -A bench/llama-direct.ts '{"modelPath": "...", "ctxSize": 2048}'
 */
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { z } from "zod";
import { ChatRequest } from "../src/protocol/chat.ts";
import { ChatPromptRenderer, type PromptSegment } from "../workers/gpu/prompt.ts";

export const DirectSetup = z.object({
  modelPath: z.string(),
  ctxSize: z.number().int().positive(),
});

export const DirectAsk = z.object({
  /** The user message. */
  prompt: z.string(),
  maxTokens: z.number().int().positive(),
});

export const DirectRun = z.object({
  promptTokens: z.number().int(),
  completionTokens: z.number().int(),
  ttftMs: z.number(),
  totalMs: z.number(),
  text: z.string(),
});
export type DirectRun = z.infer<typeof DirectRun>;

/** Template text with control tokens parsed, message text without; BOS when the model wants it (as the worker). */
function tokenize(model: LlamaModel, segments: readonly PromptSegment[]): Token[] {
  const tokens = segments.flatMap((segment, index) =>
    model.tokenize(segment.text, segment.special, index > 0 ? "trimLeadingSpace" : undefined)
  );
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

async function main(): Promise<void> {
  const setup = DirectSetup.parse(JSON.parse(Deno.args[0] ?? "{}"));
  const llama = await getLlama({ gpu: "auto", build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: setup.modelPath });
  const context = await model.createContext({ contextSize: setup.ctxSize, sequences: 1, threads: 1 });
  const sequence = context.getSequence();
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  if (typeof template !== "string") throw new Error("the model has no chat template");
  const renderer = new ChatPromptRenderer(template, {
    bos: model.tokens.bosString ?? undefined,
    eos: model.tokens.eosString ?? undefined,
  });

  const generate = async (ask: z.infer<typeof DirectAsk>): Promise<DirectRun> => {
    const request = ChatRequest.parse({
      requestedModel: "bench",
      messages: [{ role: "user", content: [{ type: "text", text: ask.prompt }] }],
      temperature: 0,
      maxTokens: ask.maxTokens,
    });
    const segments = renderer.render(request, { offerTools: false }).segments;
    const t0 = performance.now();
    const tokens = tokenize(model, segments);
    const reusable = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
    if (reusable < sequence.nextTokenIndex) {
      await sequence.eraseContextTokenRanges([{ start: reusable, end: sequence.nextTokenIndex }]);
    }
    const generated: Token[] = [];
    let ttftMs = NaN;
    for await (const token of sequence.evaluate(tokens.slice(sequence.nextTokenIndex), { temperature: 0 })) {
      if (generated.length === 0) ttftMs = performance.now() - t0;
      generated.push(token);
      if (generated.length >= ask.maxTokens) break;
    }
    const totalMs = performance.now() - t0;
    return {
      promptTokens: tokens.length,
      completionTokens: generated.length,
      ttftMs,
      totalMs,
      text: model.detokenize(generated),
    };
  };

  try {
    console.log(JSON.stringify({ ready: true }));
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of Deno.stdin.readable) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) console.log(JSON.stringify(await generate(DirectAsk.parse(JSON.parse(line)))));
      }
    }
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

if (import.meta.main) await main();
