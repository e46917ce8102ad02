/**
 * Job events → OpenAI wire format: `chat.completion.chunk` SSE (role chunk, content / reasoning_content /
 * tool_calls deltas, finish_reason, optional usage chunk, `[DONE]`) or one `chat.completion` body; and the
 * legacy `text_completion` shapes. Pure functions of the events, so they are tested without a worker.
 */
import type { ApiError, ErrorKind } from "../../http/errors.ts";
import type { FinishReason, JobEvent, Usage } from "../../protocol/events.ts";
import type { ResponseMeta, StreamEncoder } from "../flavour.ts";
import { encodeOnce, type SseBytes } from "../sse-bytes.ts";

const ERROR_TYPE: Record<ErrorKind, string> = {
  invalid_request: "invalid_request_error",
  authentication: "authentication_error",
  permission: "permission_error",
  not_found: "not_found_error",
  payload_too_large: "invalid_request_error",
  rate_limit: "rate_limit_error",
  not_implemented: "invalid_request_error",
  api_error: "server_error",
  overloaded: "server_error",
  timeout: "timeout_error",
};

export function openaiErrorBody(error: ApiError) {
  return {
    error: {
      message: error.message,
      type: ERROR_TYPE[error.kind],
      param: error.options.param ?? null,
      code: error.options.code ?? (error.kind === "authentication" ? "invalid_api_key" : null),
    },
  };
}

export function finishReason(reason: FinishReason): "stop" | "length" | "tool_calls" {
  return reason === "stop_sequence" ? "stop" : reason;
}

export function usageBody(usage: Usage | undefined) {
  const u = usage ?? { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

const sse = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;

/** What follows a token's escaped text in its chunk. */
const DELTA_SUFFIX = `},"logprobs":null,"finish_reason":null}]}\n\n`;
const DELTA_SUFFIX_BYTES = encodeOnce(DELTA_SUFFIX);

export class ChatChunkEncoder implements StreamEncoder {
  #started = false;
  #usage?: Usage;
  /**
   * The bytes every chunk of this response shares, serialised once: a token's chunk is then the prefix, its
   * escaped text and the suffix — no per-token objects — and exactly what `#chunk` would have produced.
   */
  #prefix?: string;
  constructor(readonly meta: ResponseMeta, readonly includeUsage: boolean) {}

  /** The same prefix with its field name, as bytes, for the byte path (`pushBytes`). */
  #contentPrefix?: Uint8Array;
  #reasoningPrefix?: Uint8Array;

  #sharedPrefix(): string {
    return this.#prefix ??= `data: {"id":${JSON.stringify(`chatcmpl-${this.meta.id}`)},` +
      `"object":"chat.completion.chunk","created":${JSON.stringify(this.meta.created)},` +
      `"model":${JSON.stringify(this.meta.model)},"choices":[{"index":0,"delta":{"`;
  }

  /** `#chunk({[field]: text})` for the per-token path, built from strings. */
  #delta(field: "content" | "reasoning_content", text: string): string {
    return `${this.#sharedPrefix()}${field}":${JSON.stringify(text)}${DELTA_SUFFIX}`;
  }

  /** The per-token chunks (text and reasoning once the role chunk went out) written as bytes: see SseBytes. */
  pushBytes(event: JobEvent, out: SseBytes): boolean {
    if (!this.#started || (event.type !== "text" && event.type !== "reasoning")) return false;
    if (!event.text) return true; // push() sends nothing for it either
    const prefix = event.type === "text"
      ? this.#contentPrefix ??= encodeOnce(`${this.#sharedPrefix()}content":`)
      : this.#reasoningPrefix ??= encodeOnce(`${this.#sharedPrefix()}reasoning_content":`);
    out.bytes(prefix);
    out.jsonString(event.text);
    out.bytes(DELTA_SUFFIX_BYTES);
    return true;
  }

  #chunk(delta: Record<string, unknown>, finish: string | null = null) {
    return sse({
      id: `chatcmpl-${this.meta.id}`,
      object: "chat.completion.chunk",
      created: this.meta.created,
      model: this.meta.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
  }

  #role(): string {
    if (this.#started) return "";
    this.#started = true;
    return this.#chunk({ role: "assistant", content: "" });
  }

  push(event: JobEvent): string {
    switch (event.type) {
      case "start":
        return this.#role();
      case "text":
        return this.#role() + (event.text ? this.#delta("content", event.text) : "");
      case "reasoning":
        return this.#role() + (event.text ? this.#delta("reasoning_content", event.text) : "");
      case "tool_call":
        return this.#role() + this.#chunk({
          tool_calls: [{
            index: event.index,
            id: event.id,
            type: "function",
            function: { name: event.name, arguments: "" },
          }],
        });
      case "tool_args":
        return this.#chunk({ tool_calls: [{ index: event.index, function: { arguments: event.delta } }] });
      case "usage":
        this.#usage = event.usage;
        return "";
      case "done": {
        let out = this.#role() + this.#chunk({}, finishReason(event.finishReason));
        if (this.includeUsage) {
          out += sse({
            id: `chatcmpl-${this.meta.id}`,
            object: "chat.completion.chunk",
            created: this.meta.created,
            model: this.meta.model,
            choices: [],
            usage: usageBody(this.#usage),
          });
        }
        return out + "data: [DONE]\n\n";
      }
      case "reasoning_signature":
      case "embedding": // embedding jobs only, never in a chat stream
      case "error":
      case "progress":
      default: // the router's server-tool events (Anthropic blocks) have no Chat Completions form
        return "";
    }
  }

  fail(error: ApiError): string {
    return sse(openaiErrorBody(error));
  }

  keepAlive(): string {
    return ": keep-alive\n\n";
  }
}

/** Everything a finished job said, gathered for a non-streaming answer. */
export interface Gathered {
  text: string;
  reasoning: string;
  signature?: string;
  toolCalls: { id: string; name: string; arguments: string }[];
  usage?: Usage;
  finishReason: FinishReason;
  stopSequence?: string;
  promptTokens?: number;
}

export function gather(events: JobEvent[]): Gathered {
  const g: Gathered = { text: "", reasoning: "", toolCalls: [], finishReason: "stop" };
  for (const event of events) {
    switch (event.type) {
      case "start":
        g.promptTokens = event.promptTokens;
        break;
      case "text":
        g.text += event.text;
        break;
      case "reasoning":
        g.reasoning += event.text;
        break;
      case "reasoning_signature":
        g.signature = event.signature;
        break;
      case "tool_call":
        g.toolCalls[event.index] = { id: event.id, name: event.name, arguments: "" };
        break;
      case "tool_args":
        if (g.toolCalls[event.index]) g.toolCalls[event.index].arguments += event.delta;
        break;
      case "usage":
        g.usage = event.usage;
        break;
      case "done":
        g.finishReason = event.finishReason;
        g.stopSequence = event.stopSequence;
        break;
    }
  }
  g.toolCalls = g.toolCalls.filter(Boolean);
  return g;
}

export function chatCompletionBody(events: JobEvent[], meta: ResponseMeta) {
  const g = gather(events);
  return {
    id: `chatcmpl-${meta.id}`,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: g.text === "" && g.toolCalls.length > 0 ? null : g.text,
        refusal: null,
        ...(g.reasoning ? { reasoning_content: g.reasoning } : {}),
        ...(g.toolCalls.length > 0
          ? {
            tool_calls: g.toolCalls.map((c) => ({
              id: c.id,
              type: "function",
              function: { name: c.name, arguments: c.arguments },
            })),
          }
          : {}),
      },
      logprobs: null,
      finish_reason: finishReason(g.finishReason),
    }],
    usage: usageBody(g.usage),
  };
}

/** Legacy `text_completion` streaming chunks. */
export class CompletionChunkEncoder implements StreamEncoder {
  #usage?: Usage;
  constructor(readonly meta: ResponseMeta, readonly includeUsage: boolean) {}

  #chunk(text: string, finish: string | null, extra: Record<string, unknown> = {}) {
    return sse({
      id: `cmpl-${this.meta.id}`,
      object: "text_completion",
      created: this.meta.created,
      model: this.meta.model,
      choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
      ...extra,
    });
  }

  push(event: JobEvent): string {
    if (event.type === "text" && event.text) return this.#chunk(event.text, null);
    if (event.type === "usage") this.#usage = event.usage;
    if (event.type === "done") {
      const usage = this.includeUsage ? { usage: usageBody(this.#usage) } : {};
      return this.#chunk("", finishReason(event.finishReason), usage) + "data: [DONE]\n\n";
    }
    return "";
  }

  fail(error: ApiError): string {
    return sse(openaiErrorBody(error));
  }

  keepAlive(): string {
    return ": keep-alive\n\n";
  }
}

export function completionBody(events: JobEvent[], meta: ResponseMeta) {
  const g = gather(events);
  return {
    id: `cmpl-${meta.id}`,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [{ text: g.text, index: 0, logprobs: null, finish_reason: finishReason(g.finishReason) }],
    usage: usageBody(g.usage),
  };
}
