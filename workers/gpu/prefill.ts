/**
 * Prompt evaluation ahead of generation, with progress: a long prompt is evaluated one context batch at a time and
 * reported after each, so a slow machine's long prefill keeps posting (the router tells a slow worker from a lost one
 * by that: src/dispatch/job-run.ts). Short prompts (up to two batches) go in one call, as before.
 *
 * A greedy continuation (continuation.ts) evaluates the output so far from `stepFrom` on one token at a time, as it
 * was generated: the model state is then the lost worker's bit for bit and the joined answer equals an uninterrupted
 * one (a batch rounds differently, and a near tie can flip a later token). A sampled answer resumes in batches:
 * faster, and any continuation of it is as plausible.
 */
import type { LlamaContextSequence, Token } from "node-llama-cpp";

/** Evaluates `tokens` from `from` up to (not including) the last one; returns the index evaluated up to. */
export async function evaluateAhead(
  sequence: LlamaContextSequence,
  tokens: Token[],
  options: { from: number; batch: number; stepFrom: number; signal: AbortSignal; progress(done: number): void },
): Promise<number> {
  const { batch, stepFrom, signal, progress } = options;
  let evaluated = options.from;
  const batchedEnd = Math.min(stepFrom, tokens.length - 1);
  while (batchedEnd - evaluated > 2 * batch && !signal.aborted) {
    await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(evaluated, evaluated + batch));
    evaluated += batch;
    progress(evaluated);
  }
  if (stepFrom < tokens.length - 1 && evaluated < stepFrom && !signal.aborted) {
    await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(evaluated, stepFrom));
    evaluated = stepFrom;
  }
  for (; evaluated >= stepFrom && evaluated < tokens.length - 1 && !signal.aborted; evaluated++) {
    await sequence.evaluateWithoutGeneratingNewTokens([tokens[evaluated]]);
    progress(evaluated + 1);
  }
  return evaluated;
}
