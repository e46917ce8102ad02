/**
 * An API flavour (OpenAI Chat Completions, legacy Completions, Anthropic Messages, OpenAI Responses) is one value
 * that a request carries from its route to its last byte: it parses the wire request into the internal
 * ChatRequest, renders the job's event stream as its wire response (SSE or one JSON body), and renders errors,
 * headers and usage in its own shape. The route table (src/app.ts) names each route's flavour; the shared
 * dispatcher (src/dispatch/) does the rest — queueing, cancellation, timeouts — identically for every flavour.
 * Nothing outside src/api/ asks which flavour it holds.
 */
import type { ApiError } from "../http/errors.ts";
import type { ListedModel } from "../policy/models-list.ts";
import type { ModelAlias } from "../policy/models.ts";
import type { Policy } from "../protocol/worker-protocol.ts";
import type { ChatRequest, ToolChoice } from "../protocol/chat.ts";
import type { JobEvent } from "../protocol/events.ts";
import type { SseBytes } from "./sse-bytes.ts";

/** Facts about the response that are not in the events. */
export interface ResponseMeta {
  /** The job id, used as the response id's suffix (chatcmpl-..., msg_..., resp_...). */
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
  /**
   * Optional byte path for the per-token events: writes exactly the UTF-8 of what `push` would return and returns
   * true, or returns false (writing nothing, changing nothing) to leave the event to `push`.
   */
  pushBytes?(event: JobEvent, out: SseBytes): boolean;
  /** SSE text for a failure after the stream started (an error event in the flavour's own shape). */
  fail(error: ApiError): string;
  /** SSE keep-alive text sent while waiting (a comment or the flavour's ping event). */
  keepAlive(): string;
}

/** What every API flavour owns, chat or not: how its errors, request ids and model listings look. */
export interface ApiFlavour {
  /** The API's name in metrics and logs. */
  readonly name: "openai" | "anthropic" | "responses";
  /** The error body for an HTTP error response. */
  errorBody(error: ApiError): unknown;
  /** The HTTP status for an error (Anthropic answers 529 where the router says 503). */
  errorStatus(error: ApiError): number;
  /** Headers on every response to this API's callers (the request id under the name its SDK reads). */
  responseHeaders(requestId: string): Record<string, string>;
  /** `GET …/models` (every model and alias of the policy) and `GET …/models/{id}` bodies. */
  modelsList(policy: Policy, aliases: readonly ModelAlias[], created: number): unknown;
  model(entry: ListedModel, created: number): unknown;
}

/** Render-time options from the wire request (OpenAI's `stream_options.include_usage`, Responses' echoes). */
export interface RenderOptions {
  includeUsage: boolean;
  /** Flavour-private facts from the wire request that the response repeats (opaque to the dispatcher). */
  echo?: unknown;
}

export interface ChatFlavour extends ApiFlavour {
  /** "count_tokens" for Anthropic's token counting: the job renders the prompt and reports its size. */
  readonly mode?: "generate" | "count_tokens";
  /**
   * Validates and translates a parsed JSON body (and, where the API defines any, its headers: a session id for
   * cache affinity). Throws ApiError("invalid_request") with a clear message.
   */
  toChatRequest(body: unknown, headers?: Headers): ChatRequest;
  /** Whether the caller asked for a stream. */
  wantsStream(body: unknown): boolean;
  /** What the renderer needs from a body that `toChatRequest` accepted. */
  renderOptions(body: unknown): RenderOptions;
  encoder(meta: ResponseMeta, request: ChatRequest, options: RenderOptions): StreamEncoder;
  /** The non-streaming JSON body from all events of a finished job (ending with `done`). */
  collect(events: JobEvent[], meta: ResponseMeta, request: ChatRequest, options?: RenderOptions): unknown;
  /**
   * The error for a tool_choice the router cannot satisfy (`unknown`: it names no offered tool; `required`: it
   * needs a tool and none is offered), in the API's wording; undefined where the API accepts the choice.
   */
  toolChoiceError(problem: "unknown" | "required", choice: ToolChoice): ApiError | undefined;
}
