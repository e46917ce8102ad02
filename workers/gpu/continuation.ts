/**
 * Resuming an answer whose worker was lost (a continuation job, src/protocol/worker-protocol.ts): the prompt is
 * followed by the output so far as tokens, and the engine replays those tokens through its detokenizer, stop
 * matcher and output parser before it samples, so it continues exactly where the lost worker was. With greedy
 * sampling and the lost worker's own tokens, the joined answer equals an uninterrupted one.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { Continuation } from "../../src/protocol/worker-protocol.ts";
import type { OutputEvent } from "./tool-call-parser.ts";

/** The output so far as tokens: the lost worker's own when it reported them, else its text tokenized again. */
export function resumedTokens(model: LlamaModel, continuation: Continuation, endsInsideThink: boolean): Token[] {
  if (continuation.tokens) {
    const vocabulary = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? Infinity;
    if (continuation.tokens.every((token) => token < vocabulary)) return continuation.tokens as Token[];
  }
  const { text, reasoning } = continuation;
  const raw = reasoning.length === 0
    ? text
    : (endsInsideThink ? "" : "<think>\n") + reasoning + (text.length > 0 ? `\n</think>\n\n${text}` : "");
  return model.tokenize(raw, true, "trimLeadingSpace");
}

/** Of the events a replay produced, the parts the caller has not been sent (`continuation` says what it has). */
export function unseen(events: OutputEvent[], continuation: Continuation): OutputEvent[] {
  const seen = { text: continuation.text.length, reasoning: continuation.reasoning.length };
  const out: OutputEvent[] = [];
  for (const event of events) {
    if (event.type !== "text" && event.type !== "reasoning") {
      out.push(event);
      continue;
    }
    const skip = Math.min(seen[event.type], event.text.length);
    seen[event.type] -= skip;
    if (skip < event.text.length) out.push({ ...event, text: event.text.slice(skip) });
  }
  return out;
}
