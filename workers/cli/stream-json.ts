/**
 * Translates the Claude Code CLI's `--output-format stream-json --verbose --include-partial-messages` output (one
 * JSON object per line) into job events. Pure: lines in, events out; the engine owns the process.
 *
 * What is read (2.1.197):
 * - `system`/`init`: the model the CLI resolved `--model` to.
 * - `stream_event`: the raw Messages API stream of each model call, for token-level text, thinking (with its
 *   signature) and tool calls. Only top-level events count (`parent_tool_use_id` null): sub-agents are internal.
 *   Tool calls named `mcp__api__*` are the caller's and become `tool_call`/`tool_args` under the caller's names;
 *   other tool calls are the CLI's own built-in tools (when the operator enabled some), which the CLI runs itself.
 *   A model call that ends with caller tool calls ends the job (`done` with "tool_calls"): the engine then stops
 *   the CLI before it would wait on the tool.
 * - `rate_limit_event` (subscriptions): a "rejected" status carries when the limit resets.
 * - `assistant` lines are not read for content (the stream events carry it) except for the synthetic message the
 *   CLI writes on an API failure, whose `error` names the kind (rate_limit, authentication_failed, ...).
 * - `result`: usage with cache tokens, cost, and `is_error`. API errors still say `"subtype":"success"`: only
 *   `is_error` and `api_error_status` tell.
 */
import { z } from "zod";
import type { FinishReason, JobEvent, Usage } from "../../src/protocol/events.ts";
import { CALLER_TOOL_PREFIX } from "./conversation.ts";

/** Retry-after when a rate limit does not say when it resets. */
export const DEFAULT_RATE_LIMIT_RETRY_SECONDS = 60;

const ApiUsage = z.looseObject({
  input_tokens: z.number().optional(),
  output_tokens: z.number().optional(),
  cache_read_input_tokens: z.number().nullish(),
  cache_creation_input_tokens: z.number().nullish(),
});
type ApiUsage = z.infer<typeof ApiUsage>;

const StreamEvent = z.discriminatedUnion("type", [
  z.looseObject({
    type: z.literal("message_start"),
    message: z.looseObject({ model: z.string().optional(), usage: ApiUsage.optional() }),
  }),
  z.looseObject({
    type: z.literal("content_block_start"),
    index: z.number(),
    content_block: z.looseObject({ type: z.string(), id: z.string().optional(), name: z.string().optional() }),
  }),
  z.looseObject({
    type: z.literal("content_block_delta"),
    index: z.number(),
    delta: z.looseObject({
      type: z.string(),
      text: z.string().optional(),
      thinking: z.string().optional(),
      signature: z.string().optional(),
      partial_json: z.string().optional(),
    }),
  }),
  z.looseObject({ type: z.literal("content_block_stop"), index: z.number() }),
  z.looseObject({
    type: z.literal("message_delta"),
    delta: z.looseObject({ stop_reason: z.string().nullish() }),
    usage: ApiUsage.optional(),
  }),
  z.looseObject({ type: z.literal("message_stop") }),
  z.looseObject({ type: z.literal("ping") }),
]);

const Line = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("system"), subtype: z.string().optional(), model: z.string().optional() }),
  z.looseObject({
    type: z.literal("stream_event"),
    event: z.unknown(),
    parent_tool_use_id: z.string().nullish(),
  }),
  z.looseObject({
    type: z.literal("rate_limit_event"),
    rate_limit_info: z.looseObject({ status: z.string().optional(), resetsAt: z.number().optional() }).optional(),
  }),
  z.looseObject({
    type: z.literal("assistant"),
    error: z.string().optional(),
    parent_tool_use_id: z.string().nullish(),
  }),
  z.looseObject({
    type: z.literal("result"),
    subtype: z.string().optional(),
    is_error: z.boolean().optional(),
    api_error_status: z.number().nullish(),
    result: z.string().optional(),
    errors: z.array(z.string()).optional(),
    stop_reason: z.string().nullish(),
    total_cost_usd: z.number().optional(),
    usage: ApiUsage.optional(),
  }),
]);

type TokenCounts = Required<Omit<Usage, "costUsd" | "reasoningTokens">>;

function zeroCounts(): TokenCounts {
  return { promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheCreationTokens: 0 };
}

type BlockKind = "text" | "thinking" | "caller_tool" | "other";

export interface TranslatorOptions {
  /** Sanitized MCP tool name → the caller's own tool name. */
  originalToolNames?: Map<string, string>;
  /** Epoch milliseconds (rate-limit reset times are epoch seconds). */
  now?: () => number;
}

export interface Translation {
  events: JobEvent[];
  /** The job ended with the caller's tool calls: stop the CLI (it would wait on the tool otherwise). */
  endedWithToolCalls: boolean;
}

export class StreamJsonTranslator {
  #started = false;
  #finished = false;
  #initModel?: string;
  #blocks = new Map<number, { kind: BlockKind; toolIndex?: number }>();
  #toolCalls = 0;
  #turnHasCallerTools = false;
  #turnHasText = false;
  #emittedText = false;
  #stopReason?: string;
  #callUsage: TokenCounts = zeroCounts();
  #totals: TokenCounts = zeroCounts();
  #rateLimitResetsAt?: number;
  #apiErrorKind?: string;
  #unparsed = 0;

  constructor(readonly options: TranslatorOptions = {}) {}

  /** The model the CLI said it runs (`system`/`init`). */
  get model(): string | undefined {
    return this.#initModel;
  }

  /** A terminal event (`done` or `error`) was produced. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Lines that were not JSON or not understood (kept for diagnostics; they are skipped). */
  get unparsedLines(): number {
    return this.#unparsed;
  }

  push(text: string): Translation {
    const none: Translation = { events: [], endedWithToolCalls: false };
    if (this.#finished || !text.trim()) return none;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.#unparsed++;
      return none;
    }
    const parsed = Line.safeParse(json);
    if (!parsed.success) {
      // New line types appear between CLI releases; they carry nothing this worker needs.
      this.#unparsed++;
      return none;
    }
    const line = parsed.data;
    switch (line.type) {
      case "system":
        if (line.subtype === "init" && line.model) this.#initModel = line.model;
        return none;
      case "rate_limit_event":
        if (line.rate_limit_info?.status === "rejected") this.#rateLimitResetsAt = line.rate_limit_info.resetsAt ?? 0;
        return none;
      case "assistant":
        if (line.error && !line.parent_tool_use_id) this.#apiErrorKind = line.error;
        return none;
      case "stream_event": {
        if (line.parent_tool_use_id) return none;
        const event = StreamEvent.safeParse(line.event);
        if (!event.success) return none;
        return this.#streamEvent(event.data);
      }
      case "result":
        return { events: this.#result(line), endedWithToolCalls: false };
    }
  }

  /** The CLI ended without a `result` line (crash, killed, bad flags): an explicit error, never a silent end. */
  exitedWithoutResult(exit: { code: number | null; signal: string | null; stderr: string }): JobEvent[] {
    if (this.#finished) return [];
    this.#finished = true;
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const detail = exit.stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 500);
    return [{
      type: "error",
      message: `Claude Code ${how} without a result${detail ? `: ${detail}` : ""}`,
      retryable: false,
      code: "cli_error",
    }];
  }

  #streamEvent(event: z.infer<typeof StreamEvent>): Translation {
    const events: JobEvent[] = [];
    switch (event.type) {
      case "message_start": {
        const usage = event.message.usage;
        this.#callUsage = {
          promptTokens: promptTokensOf(usage),
          completionTokens: usage?.output_tokens ?? 0,
          cachedTokens: usage?.cache_read_input_tokens ?? 0,
          cacheCreationTokens: usage?.cache_creation_input_tokens ?? 0,
        };
        this.#blocks.clear();
        this.#turnHasCallerTools = false;
        this.#turnHasText = false;
        if (!this.#started) {
          this.#started = true;
          const model = event.message.model || this.#initModel || "claude-code";
          events.push({ type: "start", model, promptTokens: this.#callUsage.promptTokens });
        }
        break;
      }
      case "content_block_start": {
        const block = event.content_block;
        if (block.type === "text" || block.type === "thinking") {
          this.#blocks.set(event.index, { kind: block.type });
        } else if (block.type === "tool_use" && block.name?.startsWith(CALLER_TOOL_PREFIX)) {
          const index = this.#toolCalls++;
          this.#turnHasCallerTools = true;
          this.#blocks.set(event.index, { kind: "caller_tool", toolIndex: index });
          const sanitized = block.name.slice(CALLER_TOOL_PREFIX.length);
          const name = this.options.originalToolNames?.get(sanitized) ?? sanitized;
          events.push({ type: "tool_call", index, id: block.id ?? `toolu_auxot_${index}`, name });
        } else {
          this.#blocks.set(event.index, { kind: "other" });
        }
        break;
      }
      case "content_block_delta": {
        const block = this.#blocks.get(event.index);
        const delta = event.delta;
        if (block?.kind === "text" && delta.type === "text_delta" && delta.text) {
          // Text of a later model call (after the CLI ran one of its own tools) starts a new paragraph.
          if (!this.#turnHasText && this.#emittedText) events.push({ type: "text", text: "\n\n" });
          this.#turnHasText = true;
          this.#emittedText = true;
          events.push({ type: "text", text: delta.text });
        } else if (block?.kind === "thinking" && delta.type === "thinking_delta" && delta.thinking) {
          events.push({ type: "reasoning", text: delta.thinking });
        } else if (block?.kind === "thinking" && delta.type === "signature_delta" && delta.signature) {
          events.push({ type: "reasoning_signature", signature: delta.signature });
        } else if (block?.kind === "caller_tool" && delta.type === "input_json_delta" && delta.partial_json) {
          events.push({ type: "tool_args", index: block.toolIndex!, delta: delta.partial_json });
        }
        break;
      }
      case "message_delta": {
        if (event.delta.stop_reason) this.#stopReason = event.delta.stop_reason;
        const usage = event.usage;
        if (usage?.output_tokens !== undefined) this.#callUsage.completionTokens = usage.output_tokens;
        if (usage?.input_tokens !== undefined) this.#callUsage.promptTokens = promptTokensOf(usage);
        break;
      }
      case "message_stop": {
        const call = this.#callUsage;
        this.#totals.promptTokens += call.promptTokens;
        this.#totals.completionTokens += call.completionTokens;
        this.#totals.cachedTokens += call.cachedTokens;
        this.#totals.cacheCreationTokens += call.cacheCreationTokens;
        this.#callUsage = zeroCounts();
        if (this.#turnHasCallerTools) {
          this.#finished = true;
          // No `result` will come (the CLI is stopped here), so no cost: only what the stream reported.
          events.push({ type: "usage", usage: { ...this.#totals } });
          events.push({ type: "done", finishReason: "tool_calls" });
          return { events, endedWithToolCalls: true };
        }
        break;
      }
    }
    return { events, endedWithToolCalls: false };
  }

  #result(line: Extract<z.infer<typeof Line>, { type: "result" }>): JobEvent[] {
    this.#finished = true;
    const status = line.api_error_status ?? undefined;
    if (line.is_error || (line.subtype && line.subtype !== "success")) {
      const message = line.result || line.errors?.join("; ") || line.subtype || "Claude Code reported an error";
      const rateLimited = status === 429 || this.#apiErrorKind === "rate_limit" ||
        this.#rateLimitResetsAt !== undefined;
      if (rateLimited) {
        return [{
          type: "error",
          message,
          retryable: true,
          code: "rate_limited",
          retryAfterSeconds: this.#retryAfterSeconds(),
        }];
      }
      const invalid = status === 400 || status === 413 || this.#apiErrorKind === "invalid_request";
      return [{ type: "error", message, retryable: false, code: invalid ? "invalid_request" : "cli_error" }];
    }
    if (!this.#started) {
      // The CLI answered by itself (a slash command, a local error): the model never saw the request.
      return [{
        type: "error",
        message: `Claude Code answered without calling the model: ${line.result || "(no text)"}`,
        retryable: false,
        code: "cli_error",
      }];
    }
    const usage = line.usage;
    const events: JobEvent[] = [];
    events.push({
      type: "usage",
      usage: {
        promptTokens: usage ? promptTokensOf(usage) : this.#totals.promptTokens,
        completionTokens: usage?.output_tokens ?? this.#totals.completionTokens,
        cachedTokens: usage ? usage.cache_read_input_tokens ?? 0 : this.#totals.cachedTokens,
        cacheCreationTokens: usage ? usage.cache_creation_input_tokens ?? 0 : this.#totals.cacheCreationTokens,
        ...(line.total_cost_usd !== undefined ? { costUsd: line.total_cost_usd } : {}),
      },
    });
    events.push({ type: "done", finishReason: finishReason(this.#stopReason ?? line.stop_reason ?? undefined) });
    return events;
  }

  #retryAfterSeconds(): number {
    const resetsAt = this.#rateLimitResetsAt;
    if (!resetsAt) return DEFAULT_RATE_LIMIT_RETRY_SECONDS;
    const now = (this.options.now ?? Date.now)();
    return Math.max(1, Math.ceil(resetsAt - now / 1000));
  }
}

/** The whole prompt, cached tokens included (the Usage convention); Anthropic counts the three apart. */
function promptTokensOf(usage: ApiUsage | undefined): number {
  if (!usage) return 0;
  return (usage.input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0);
}

function finishReason(stopReason: string | undefined): FinishReason {
  switch (stopReason) {
    case "max_tokens":
      return "length";
    case "stop_sequence":
      return "stop_sequence";
    default:
      // end_turn, refusal, pause_turn, or a built-in tool call the CLI could not continue.
      return "stop";
  }
}
