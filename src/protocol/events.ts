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
  /** Of `completionTokens`, those spent on reasoning (where the engine tells them apart). */
  reasoningTokens: z.number().int().nonnegative().optional(),
  costUsd: z.number().nonnegative().optional(),
});
export type Usage = z.infer<typeof Usage>;

export const JobEvent = z.discriminatedUnion("type", [
  /** The worker accepted the job and knows the prompt size (lets APIs report input usage up front). */
  z.object({ type: z.literal("start"), model: z.string(), promptTokens: z.number().int().nonnegative().optional() }),
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({ type: z.literal("reasoning"), text: z.string() }),
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
