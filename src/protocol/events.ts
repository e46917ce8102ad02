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
  /** One input's embedding (embedding jobs): little-endian float32 values, base64 (compact and exact). */
  z.object({ type: z.literal("embedding"), index: z.number().int().nonnegative(), base64: z.string() }),
  z.object({
    type: z.literal("done"),
    finishReason: FinishReason,
    stopSequence: z.string().optional(),
    /** With "length": the answer stopped at the end of the context, before the request's max_tokens. */
    contextFull: z.boolean().optional(),
  }),
  z.object({
    type: z.literal("error"),
    message: z.string(),
    /** Retryable errors before any output make the router queue the job again. */
    retryable: z.boolean().default(false),
    code: z.string().optional(),
    retryAfterSeconds: z.number().nonnegative().optional(),
  }),
]);
/**
 * Events only the router's tool loop produces (src/tools/loop.ts), never a worker: a server tool the caller
 * declared (Anthropic's `web_search_*`, `web_fetch_*`) ran, and what it found. The Anthropic flavour shows them
 * as `server_tool_use` and `web_search_tool_result` / `web_fetch_tool_result` blocks; other flavours skip them.
 * They are not part of the worker protocol's schema, so a worker cannot post them.
 */
export type ServerToolEvent =
  | { type: "server_tool_use"; id: string; name: string; input: Record<string, unknown> }
  | {
    type: "server_tool_result";
    toolUseId: string;
    tool: "web_search" | "web_fetch";
    /** web_search: the results shown to the model. */
    results?: WebSearchHit[];
    /** web_fetch: the fetched document. */
    document?: { url: string; text: string; retrievedAt: string };
    /** Set when the call failed: Anthropic's error_code (max_uses_exceeded, url_not_allowed, unavailable, ...). */
    errorCode?: string;
  };

export interface WebSearchHit {
  title: string;
  url: string;
  snippet: string;
  pageAge?: string;
}

export type JobEvent = z.infer<typeof JobEvent> | ServerToolEvent;

/** Events that end a job. */
export function isTerminal(event: JobEvent): boolean {
  return event.type === "done" || event.type === "error";
}

/** Events that count as output a caller may already have seen (so the job can no longer be re-queued). */
export function isOutput(event: JobEvent): boolean {
  return event.type === "text" || event.type === "reasoning" || event.type === "tool_call" ||
    event.type === "tool_args" || event.type === "embedding";
}
