/**
 * Job events: what a worker produces while serving a job, and what the router relays to the caller.
 * Every API flavour renders its wire format from this one stream.
 */
import { z } from "zod";

export const FinishReason = z.enum(["stop", "length", "tool_calls", "stop_sequence"]);
export type FinishReason = z.infer<typeof FinishReason>;

/** Token usage. `promptTokens` counts the whole prompt, cached tokens included (OpenAI's convention). */
export const Usage = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative().default(0),
  cacheCreationTokens: z.number().int().nonnegative().optional(),
  costUsd: z.number().nonnegative().optional(),
});
export type Usage = z.infer<typeof Usage>;

/**
 * The model's own token ids behind a text or reasoning event (GPU workers): a continuation hands them to the next
 * worker so that it resumes from exactly the tokens generated, not from a re-tokenization of their text.
 */
const OutputTokens = z.array(z.number().int().nonnegative()).max(100_000).optional();

export const JobEvent = z.discriminatedUnion("type", [
  /** The worker accepted the job and knows the prompt size (lets APIs report input usage up front). */
  z.object({
    type: z.literal("start"),
    model: z.string(),
    promptTokens: z.number().int().nonnegative().optional(),
    /** The worker resumed the job's `continuation` (a worker that ignored it would answer from the start). */
    continued: z.boolean().optional(),
  }),
  z.object({ type: z.literal("text"), text: z.string(), tokens: OutputTokens }),
  z.object({ type: z.literal("reasoning"), text: z.string(), tokens: OutputTokens }),
  /**
   * Liveness: a worker posts at least once a second while it runs a job, tokens or not (protocol rule). The phase
   * and counts come from the engine where it knows them (prompt evaluation progress, tokens generated so far).
   * Never shown to callers.
   */
  z.object({
    type: z.literal("progress"),
    phase: z.enum(["prefill", "generate"]),
    /** Prompt tokens evaluated so far, of `promptTokens`. */
    promptTokensDone: z.number().int().nonnegative().optional(),
    promptTokens: z.number().int().nonnegative().optional(),
    /** Tokens generated so far in this attempt. */
    completionTokens: z.number().int().nonnegative().optional(),
  }),
  z.object({ type: z.literal("reasoning_signature"), signature: z.string() }),
  /** A tool call begins: its index among this answer's calls, id and name, before any argument text. */
  z.object({ type: z.literal("tool_call"), index: z.number().int().nonnegative(), id: z.string(), name: z.string() }),
  z.object({ type: z.literal("tool_args"), index: z.number().int().nonnegative(), delta: z.string() }),
  z.object({ type: z.literal("usage"), usage: Usage }),
  z.object({ type: z.literal("done"), finishReason: FinishReason, stopSequence: z.string().optional() }),
  z.object({
    type: z.literal("error"),
    message: z.string(),
    /** Retryable errors before any output make the router queue the job again. */
    retryable: z.boolean().default(false),
    code: z.string().optional(),
    retryAfterSeconds: z.number().nonnegative().optional(),
  }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

/** Events that end a job. */
export function isTerminal(event: JobEvent): boolean {
  return event.type === "done" || event.type === "error";
}

/** Events that count as output a caller may already have seen (so the job can no longer be re-queued). */
export function isOutput(event: JobEvent): boolean {
  return event.type === "text" || event.type === "reasoning" || event.type === "tool_call" ||
    event.type === "tool_args";
}
