/**
 * An API flavour (OpenAI, Anthropic) is configuration plus pure transforms: a wire request becomes the internal
 * ChatRequest, and the job's event stream becomes the flavour's wire response (SSE or one JSON body). The shared
 * dispatcher (src/dispatch/) does the rest — queueing, cancellation, timeouts — identically for every flavour.
 */
import type { ApiError } from "../http/errors.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { JobEvent } from "../protocol/events.ts";

/** Facts about the response that are not in the events. */
export interface ResponseMeta {
  /** The job id, used as the response id's suffix (chatcmpl-..., msg_...). */
  id: string;
  /** Unix seconds at which the request was accepted. */
  created: number;
  /** The model name to report (the policy's model, or what the worker said it served). */
  model: string;
}

/** Turns a job's events, in order, into SSE text. Stateful: one encoder per response. */
export interface StreamEncoder {
  /** SSE text to send for this event ("" when nothing is sent). */
  push(event: JobEvent): string;
  /** SSE text for a failure after the stream started (an error event in the flavour's own shape). */
  fail(error: ApiError): string;
  /** SSE keep-alive text sent while waiting (a comment or the flavour's ping event). */
  keepAlive(): string;
}

export interface ChatFlavour {
  readonly name: "openai" | "anthropic";
  /** Validates and translates a parsed JSON body. Throws ApiError("invalid_request") with a clear message. */
  toChatRequest(body: unknown): ChatRequest;
  /** Whether the caller asked for a stream. */
  wantsStream(body: unknown): boolean;
  encoder(meta: ResponseMeta, request: ChatRequest, options: { includeUsage: boolean }): StreamEncoder;
  /** The non-streaming JSON body from all events of a finished job (ending with `done`). */
  collect(events: JobEvent[], meta: ResponseMeta, request: ChatRequest): unknown;
  /** The error body and headers for an HTTP error response. */
  errorBody(error: ApiError): unknown;
}
