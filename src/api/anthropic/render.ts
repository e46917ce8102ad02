/**
 * Job events → Anthropic Messages responses: the SSE stream (`message_start` … `message_stop`), the
 * non-streaming message JSON, and error bodies. Pure: no I/O, no clock.
 *
 * Both response kinds come from one `ContentBlocks` tracker, so a stream and a JSON body of the same events
 * always agree. Decisions the wire format leaves open:
 * - Blocks get indices in the order they open; a block closes when a block of another kind (or another tool
 *   call) starts, or at `done`. Empty text/reasoning deltas open nothing.
 * - A thinking block starts as `{thinking: "", signature: ""}`. A `reasoning_signature` event becomes its
 *   `signature_delta`, sent before the block closes; more reasoning after a signature opens a new thinking
 *   block. When the worker sends no signature (local models have none) no `signature_delta` is sent and the
 *   block keeps `signature: ""`, which Claude Code hands back unchanged and to-chat.ts reads as "no signature".
 *   A signature with no thinking block open starts an empty thinking block (Anthropic's "omitted" thinking).
 * - Tool calls: `content_block_start` with `input: {}`, then each `tool_args` fragment as an
 *   `input_json_delta`, as the worker produced it. Arguments arriving for a call whose block is already closed
 *   (a worker interleaving parallel calls) are still sent with that block's index rather than dropped.
 * - `message_start` reports `start.promptTokens` as `input_tokens` (the whole prompt: the cache split is known
 *   only at the end). `message_delta` then carries the final usage. The internal `promptTokens` counts the whole
 *   prompt, cached tokens included (OpenAI's convention); Anthropic's `input_tokens` excludes cache reads and
 *   cache writes, so it is `promptTokens - cachedTokens - cacheCreationTokens`.
 * - stop reasons: stop → end_turn, length → max_tokens (model_context_window_exceeded when the worker stopped at
 *   the context's end before the request's max_tokens, as Anthropic's current models do), stop_sequence →
 *   stop_sequence (with the sequence), tool_calls → tool_use; a "stop" after tool calls is reported as tool_use,
 *   which is what clients act on.
 * - In the JSON body a tool's input is its argument text parsed as a JSON object. Text that is not one (a model
 *   cut off by max_tokens, or malformed output) gives `input: {}`: the client's tool then reports the missing
 *   arguments to the model, which can try again, instead of the whole turn failing.
 * - Server tools the router ran (src/tools/declared.ts): a `server_tool_use` block (its input as one
 *   `input_json_delta`), then the result block whole in its `content_block_start` (server-blocks.ts), as Anthropic
 *   streams them; `usage.server_tool_use` counts the searches and fetches that ran, and is present only then.
 * - Keep-alives: an SSE comment until `message_start` has been sent (a `ping` must not precede it), then
 *   `event: ping`.
 */
import { ApiError, type ErrorKind } from "../../http/errors.ts";
import type { ResponseMeta, StreamEncoder } from "../flavour.ts";
import { encodeOnce, type SseBytes } from "../sse-bytes.ts";
import type { FinishReason, JobEvent, Usage } from "../../protocol/events.ts";
import { type ServerResultBlock, serverResultBlock } from "./server-blocks.ts";

type BlockStart =
  | { type: "text"; text: "" }
  | { type: "thinking"; thinking: ""; signature: "" }
  | { type: "tool_use" | "server_tool_use"; id: string; name: string; input: Record<string, never> }
  | ServerResultBlock;

type BlockDelta =
  | { type: "text_delta"; text: string }
  | { type: "thinking_delta"; thinking: string }
  | { type: "signature_delta"; signature: string }
  | { type: "input_json_delta"; partial_json: string };

/** The content-block events of the Anthropic stream, also used to assemble the JSON body. */
type BlockStep =
  | { type: "content_block_start"; index: number; content_block: BlockStart }
  | { type: "content_block_delta"; index: number; delta: BlockDelta }
  | { type: "content_block_stop"; index: number };

type OpenBlock = { index: number; kind: "text" | "thinking" | "tool_use"; signed?: boolean };

/** Turns content events into content-block steps, assigning indices and closing blocks in order. */
class ContentBlocks {
  #nextIndex = 0;
  #open: OpenBlock | undefined;
  /** Tool call index (from the events) → content block index. */
  #toolBlocks = new Map<number, number>();
  /** Server tool calls that ran, by tool (web_search_requests, web_fetch_requests). */
  readonly serverToolUse = { web_search_requests: 0, web_fetch_requests: 0 };
  #usedServerTools = false;

  get usedServerTools(): boolean {
    return this.#usedServerTools;
  }

  get usedTools(): boolean {
    return this.#toolBlocks.size > 0;
  }

  step(event: JobEvent): BlockStep[] {
    switch (event.type) {
      case "text":
        if (!event.text) return [];
        return this.#deltaOn("text", { type: "text_delta", text: event.text });
      case "reasoning": {
        if (!event.text) return [];
        const steps = this.#open?.kind === "thinking" && this.#open.signed ? this.close() : [];
        steps.push(...this.#deltaOn("thinking", { type: "thinking_delta", thinking: event.text }));
        return steps;
      }
      case "reasoning_signature": {
        const steps = this.#deltaOn("thinking", { type: "signature_delta", signature: event.signature });
        if (this.#open) this.#open.signed = true;
        return steps;
      }
      case "tool_call": {
        const steps = this.close();
        const index = this.#nextIndex++;
        this.#open = { index, kind: "tool_use" };
        this.#toolBlocks.set(event.index, index);
        const content_block: BlockStart = { type: "tool_use", id: event.id, name: event.name, input: {} };
        steps.push({ type: "content_block_start", index, content_block });
        return steps;
      }
      case "server_tool_use": {
        const steps = this.close();
        const index = this.#nextIndex++;
        const content_block: BlockStart = { type: "server_tool_use", id: event.id, name: event.name, input: {} };
        const delta: BlockDelta = { type: "input_json_delta", partial_json: JSON.stringify(event.input) };
        steps.push(
          { type: "content_block_start", index, content_block },
          { type: "content_block_delta", index, delta },
          { type: "content_block_stop", index },
        );
        return steps;
      }
      case "server_tool_result": {
        const steps = this.close();
        const index = this.#nextIndex++;
        this.#usedServerTools = true;
        if (!event.errorCode) this.serverToolUse[`${event.tool}_requests`]++;
        steps.push(
          { type: "content_block_start", index, content_block: serverResultBlock(event) },
          { type: "content_block_stop", index },
        );
        return steps;
      }
      case "tool_args": {
        const index = this.#toolBlocks.get(event.index);
        // Arguments for a call that never started have no block to go to (a worker bug): nothing to send.
        if (index === undefined || !event.delta) return [];
        return [{ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: event.delta } }];
      }
      default:
        return [];
    }
  }

  /** The index of the open block when it is a text block (the per-token fast path), else undefined. */
  get openTextIndex(): number | undefined {
    return this.#open?.kind === "text" ? this.#open.index : undefined;
  }

  /** Closes the open block, if any. */
  close(): BlockStep[] {
    const open = this.#open;
    this.#open = undefined;
    return open ? [{ type: "content_block_stop", index: open.index }] : [];
  }

  /** A delta on the open block of this kind, opening one first (and closing another) when needed. */
  #deltaOn(kind: "text" | "thinking", delta: BlockDelta): BlockStep[] {
    if (this.#open?.kind === kind) return [{ type: "content_block_delta", index: this.#open.index, delta }];
    const steps = this.close();
    const index = this.#nextIndex++;
    this.#open = { index, kind };
    const content_block: BlockStart = kind === "text"
      ? { type: "text", text: "" }
      : { type: "thinking", thinking: "", signature: "" };
    steps.push({ type: "content_block_start", index, content_block }, { type: "content_block_delta", index, delta });
    return steps;
  }
}

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" | "model_context_window_exceeded";

const STOP_REASONS: Record<FinishReason, StopReason> = {
  stop: "end_turn",
  length: "max_tokens",
  stop_sequence: "stop_sequence",
  tool_calls: "tool_use",
};

function stopReasonOf(reason: FinishReason, usedTools: boolean, contextFull?: boolean): StopReason {
  if (reason === "length" && contextFull) return "model_context_window_exceeded";
  return reason === "stop" && usedTools ? "tool_use" : STOP_REASONS[reason];
}

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  server_tool_use?: { web_search_requests: number; web_fetch_requests: number };
}

function withServerToolUse(usage: AnthropicUsage, blocks: ContentBlocks): AnthropicUsage {
  return blocks.usedServerTools ? { ...usage, server_tool_use: { ...blocks.serverToolUse } } : usage;
}

function anthropicUsage(usage: Usage | undefined, promptTokens: number | undefined): AnthropicUsage {
  if (!usage) {
    return {
      input_tokens: promptTokens ?? 0,
      output_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    };
  }
  const cacheCreation = usage.cacheCreationTokens ?? 0;
  return {
    input_tokens: Math.max(0, usage.promptTokens - usage.cachedTokens - cacheCreation),
    output_tokens: usage.completionTokens,
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: usage.cachedTokens,
  };
}

function sse<Event extends { type: string }>(event: Event): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

const TEXT_DELTA_TAIL = encodeOnce("}}\n\n");

/** One encoder per streamed response. */
export class AnthropicStreamEncoder implements StreamEncoder {
  #blocks = new ContentBlocks();
  #started = false;
  #finished = false;
  #promptTokens: number | undefined;
  #usage: Usage | undefined;

  constructor(private readonly meta: ResponseMeta) {}

  push(event: JobEvent): string {
    if (this.#finished) return "";
    switch (event.type) {
      case "start":
        this.#promptTokens ??= event.promptTokens;
        return this.#messageStart();
      case "usage":
        this.#usage = event.usage;
        return "";
      case "done": {
        this.#finished = true;
        const delta = {
          stop_reason: stopReasonOf(event.finishReason, this.#blocks.usedTools, event.contextFull),
          stop_sequence: event.finishReason === "stop_sequence" ? event.stopSequence ?? null : null,
        };
        return this.#messageStart() + this.#blocks.close().map(sse).join("") +
          sse({
            type: "message_delta",
            delta,
            usage: withServerToolUse(anthropicUsage(this.#usage, this.#promptTokens), this.#blocks),
          }) +
          sse({ type: "message_stop" });
      }
      case "error":
        return this.fail(jobErrorToApiError(event));
      case "text": {
        // The per-token path: a text delta on the open text block, written as the same bytes `sse` would write
        // for it without building the step objects.
        const index = this.#started && event.text ? this.#blocks.openTextIndex : undefined;
        if (index !== undefined) {
          return `event: content_block_delta\ndata: {"type":"content_block_delta","index":${index},` +
            `"delta":{"type":"text_delta","text":${JSON.stringify(event.text)}}}\n\n`;
        }
        return this.#messageStart() + this.#blocks.step(event).map(sse).join("");
      }
      default:
        return this.#messageStart() + this.#blocks.step(event).map(sse).join("");
    }
  }

  /** The per-token text delta of `push`, written as bytes (see SseBytes); false for any other event. */
  pushBytes(event: JobEvent, out: SseBytes): boolean {
    if (event.type !== "text" || !event.text || this.#finished || !this.#started) return false;
    const index = this.#blocks.openTextIndex;
    if (index === undefined) return false;
    if (this.#textDeltaHead?.index !== index) {
      const head = `event: content_block_delta\ndata: {"type":"content_block_delta","index":${index},` +
        `"delta":{"type":"text_delta","text":`;
      this.#textDeltaHead = { index, bytes: encodeOnce(head) };
    }
    out.bytes(this.#textDeltaHead.bytes);
    out.jsonString(event.text);
    out.bytes(TEXT_DELTA_TAIL);
    return true;
  }
  #textDeltaHead?: { index: number; bytes: Uint8Array };

  fail(error: ApiError): string {
    if (this.#finished) return "";
    this.#finished = true;
    return sse(errorBody(error));
  }

  keepAlive(): string {
    if (this.#finished) return "";
    return this.#started ? sse({ type: "ping" }) : ": keep-alive\n\n";
  }

  /** `message_start` the first time, "" afterwards. */
  #messageStart(): string {
    if (this.#started) return "";
    this.#started = true;
    return sse({
      type: "message_start",
      message: {
        id: messageId(this.meta),
        type: "message",
        role: "assistant",
        model: this.meta.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: anthropicUsage(undefined, this.#promptTokens),
      },
    });
  }
}

export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "tool_use" | "server_tool_use"; id: string; name: string; input: Record<string, unknown> }
  | ServerResultBlock;

export interface AnthropicMessage {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

/** The non-streaming message from all events of a finished job. */
export function collectMessage(events: JobEvent[], meta: ResponseMeta): AnthropicMessage {
  const blocks = new ContentBlocks();
  const content: ContentBlock[] = [];
  const toolArgs = new Map<number, string>();
  let promptTokens: number | undefined;
  let usage: Usage | undefined;
  let finishReason: FinishReason = "stop";
  let contextFull = false;
  let stopSequence: string | null = null;
  for (const event of events) {
    if (event.type === "start") promptTokens ??= event.promptTokens;
    if (event.type === "usage") usage = event.usage;
    if (event.type === "done") {
      finishReason = event.finishReason;
      contextFull = event.contextFull === true;
      stopSequence = event.finishReason === "stop_sequence" ? event.stopSequence ?? null : null;
    }
    for (const step of blocks.step(event)) {
      if (step.type === "content_block_start") content.push(structuredClone(step.content_block));
      if (step.type !== "content_block_delta") continue;
      const block = content[step.index];
      const delta = step.delta;
      if (delta.type === "text_delta" && block.type === "text") block.text += delta.text;
      if (delta.type === "thinking_delta" && block.type === "thinking") block.thinking += delta.thinking;
      if (delta.type === "signature_delta" && block.type === "thinking") block.signature = delta.signature;
      if (delta.type === "input_json_delta") {
        toolArgs.set(step.index, (toolArgs.get(step.index) ?? "") + delta.partial_json);
      }
    }
  }
  for (const [index, text] of toolArgs) {
    const block = content[index];
    if (block.type === "tool_use" || block.type === "server_tool_use") block.input = parseToolInput(text);
  }
  return {
    id: messageId(meta),
    type: "message",
    role: "assistant",
    model: meta.model,
    content,
    stop_reason: stopReasonOf(finishReason, blocks.usedTools, contextFull),
    stop_sequence: stopSequence,
    usage: withServerToolUse(anthropicUsage(usage, promptTokens), blocks),
  };
}

function parseToolInput(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return { ...parsed };
  } catch {
    // Not JSON (e.g. cut off by max_tokens): see the module comment.
  }
  return {};
}

function messageId(meta: ResponseMeta): string {
  return `msg_${meta.id}`;
}

/** Anthropic's error `type` and HTTP status for each error kind. */
const ANTHROPIC_ERRORS: Record<ErrorKind, { type: string; status: number }> = {
  invalid_request: { type: "invalid_request_error", status: 400 },
  authentication: { type: "authentication_error", status: 401 },
  permission: { type: "permission_error", status: 403 },
  not_found: { type: "not_found_error", status: 404 },
  payload_too_large: { type: "request_too_large", status: 413 },
  rate_limit: { type: "rate_limit_error", status: 429 },
  // Anthropic has no 501; it answers unsupported features with a 400 invalid_request_error.
  not_implemented: { type: "invalid_request_error", status: 400 },
  api_error: { type: "api_error", status: 500 },
  overloaded: { type: "overloaded_error", status: 529 },
  timeout: { type: "timeout_error", status: 504 },
};

export interface AnthropicErrorBody {
  type: "error";
  error: { type: string; message: string };
}

export function errorBody(error: ApiError): AnthropicErrorBody {
  return { type: "error", error: { type: ANTHROPIC_ERRORS[error.kind].type, message: error.message } };
}

/** The HTTP status Anthropic uses for this error (529 for overloaded); an explicit `options.status` wins. */
export function errorStatus(error: ApiError): number {
  return error.options.status ?? ANTHROPIC_ERRORS[error.kind].status;
}

/** A worker's error event as an ApiError: a `code` naming an error kind keeps it, anything else is api_error. */
function jobErrorToApiError(event: Extract<JobEvent, { type: "error" }>): ApiError {
  const kind = event.code && Object.hasOwn(ANTHROPIC_ERRORS, event.code) ? event.code as ErrorKind : "api_error";
  return new ApiError(kind, event.message);
}
