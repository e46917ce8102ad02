/**
 * Responses API request → internal ChatRequest, plus what the response must repeat or know (`ResponsesEcho`).
 *
 * - `instructions` and the developer/system messages before the first user or assistant message become one leading
 *   system message (chat templates accept a system message only first); later ones stay in place.
 * - Consecutive assistant-side items (`reasoning`, assistant `message`, `function_call`, `custom_tool_call`) form one
 *   assistant message; a reasoning item after content or calls starts the next one.
 * - `namespace` tools are flattened: function `f` of namespace `ns` is the internal tool `ns__f`; calls are shown
 *   with `namespace` and the short name again (render.ts).
 * - `custom` tools become a tool whose arguments are `{"input": string}` with `freeform` set (src/protocol/chat.ts).
 * - Reasoning items come back with our `encrypted_content` (the reasoning text, encoded — not secret: it is the
 *   model's own output) or their summary/content text; either restores the earlier turn's reasoning.
 * - Stateless: `previous_response_id`, `conversation`, `store: true`, `background: true`, item references and
 *   prompt templates are refused with a 400 naming the field. What the engine cannot honour (logprobs) too.
 */
import type { z } from "zod";
import { ApiError } from "../../http/errors.ts";
import type { ChatMessage, ChatRequest, ContentPart as ChatPart } from "../../protocol/chat.ts";
import { parseBody } from "../openai/to-chat.ts";
import {
  AdditionalToolsItem,
  type ContentPart,
  CustomToolCallItem,
  CustomToolCallOutputItem,
  FunctionCallItem,
  FunctionCallOutputItem,
  MessageItem,
  ReasoningItem,
  ResponseCreateRequest,
  ToolSearchCallItem,
  ToolSearchOutputItem,
} from "./schema.ts";
import {
  type DeclaredTool,
  describeFoundTools,
  TOOL_SEARCH,
  type ToolShape,
  translateToolChoice,
  translateTools,
} from "./tools.ts";

export type { ToolShape } from "./tools.ts";

/** What the rendered response needs from the request. */
export interface ResponsesEcho {
  /** Request fields the Response object repeats (instructions, tools, tool_choice, sampling, text, ...). */
  fields: Record<string, unknown>;
  /** Internal tool name → how its calls look. */
  tools: Record<string, ToolShape>;
  /** Reasoning shown as a summary (`reasoning.summary` asked for) rather than as reasoning text. */
  summary: boolean;
  /** `include: ["reasoning.encrypted_content"]`: reasoning items carry it, for the caller to send back. */
  encryptedReasoning: boolean;
}

const ENCRYPTED_PREFIX = "auxot.v1.";

/** The reasoning text as `encrypted_content`: opaque to the caller, readable by this router on the next turn. */
export function encodeReasoning(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return ENCRYPTED_PREFIX + btoa(binary);
}

function decodeReasoning(content: string): string | undefined {
  if (!content.startsWith(ENCRYPTED_PREFIX)) return undefined;
  try {
    const binary = atob(content.slice(ENCRYPTED_PREFIX.length));
    return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

function refuse(param: string, why: string): never {
  throw new ApiError("invalid_request", `'${param}' is not supported by this router: ${why}`, { param });
}

const INCLUDE_HONOURED = new Set([
  "reasoning.encrypted_content",
  // Items of these kinds never appear in this router's output, so asking for their details changes nothing.
  "web_search_call.action.sources",
  "web_search_call.results",
  "file_search_call.results",
  "code_interpreter_call.outputs",
  "computer_call_output.output.image_url",
  "message.input_image.image_url",
]);

export function toResponsesChat(raw: unknown, headers?: Headers): { request: ChatRequest; echo: ResponsesEcho } {
  const body = parseBody(ResponseCreateRequest, raw);
  if (body.previous_response_id != null) {
    refuse("previous_response_id", "responses are not stored; send the whole conversation in 'input' (store: false).");
  }
  if (body.conversation != null) refuse("conversation", "conversations are not stored; send them in 'input'.");
  if (body.store === true) refuse("store", "responses are not stored; send store: false and the whole 'input'.");
  if (body.background === true) refuse("background", "background responses need storage; stream instead.");
  if (body.prompt != null) refuse("prompt", "stored prompt templates are not available.");
  if (body.top_logprobs) refuse("top_logprobs", "log probabilities are not reported.");
  for (const item of body.include ?? []) {
    if (!INCLUDE_HONOURED.has(item)) refuse("include", `'${item}' cannot be included.`);
  }

  const input = body.input ?? [];
  const { tools, shapes } = translateTools([
    ...(body.tools ?? []).map((tool, i) => ({ tool, param: `tools[${i}]` })),
    ...toolsInInput(input),
  ]);
  const { toolChoice, offered } = translateToolChoice(body.tool_choice, tools, shapes);
  const messages = translateInput(body.instructions ?? undefined, input, shapes);
  const format = body.text?.format;
  const effort = body.reasoning?.effort;
  const summary = body.reasoning?.summary ?? body.reasoning?.generate_summary;
  const request: ChatRequest = {
    requestedModel: body.model,
    messages,
    tools: offered,
    toolChoice,
    maxTokens: body.max_output_tokens ?? undefined,
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
    stop: [],
    responseFormat: format == null || format.type === "text"
      ? undefined
      : format.type === "json_object"
      ? { type: "json_object" }
      : { type: "json_schema", name: format.name, schema: format.schema },
    reasoning: effort == null
      ? undefined
      : effort === "none"
      ? { enabled: false }
      : { enabled: true, effort: effort === "xhigh" ? "high" : effort },
    conversationKey: conversationKey(body.prompt_cache_key ?? undefined, headers),
  };
  const echo: ResponsesEcho = {
    fields: {
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      max_tool_calls: body.max_tool_calls ?? null,
      metadata: body.metadata ?? {},
      parallel_tool_calls: body.parallel_tool_calls ?? true,
      prompt_cache_key: body.prompt_cache_key ?? null,
      reasoning: { effort: effort ?? null, summary: summary ?? null },
      safety_identifier: body.safety_identifier ?? null,
      temperature: body.temperature ?? 1,
      text: { format: format ?? { type: "text" }, verbosity: body.text?.verbosity ?? "medium" },
      tool_choice: body.tool_choice ?? "auto",
      tools: body.tools ?? [],
      top_logprobs: 0,
      top_p: body.top_p ?? 1,
      truncation: body.truncation ?? "disabled",
      user: body.user ?? null,
    },
    tools: shapes,
    summary: summary != null,
    encryptedReasoning: (body.include ?? []).includes("reasoning.encrypted_content"),
  };
  return { request, echo };
}

/**
 * The conversation key for KV-cache affinity: `prompt_cache_key` (Codex sends its session id there), else Codex's
 * `session-id` / `thread-id` headers. Undefined lets the router fall back to a digest of the conversation's opening.
 */
function conversationKey(promptCacheKey: string | undefined, headers: Headers | undefined): string | undefined {
  const key = promptCacheKey ?? headers?.get("session-id") ?? headers?.get("thread-id") ?? undefined;
  if (key === undefined) return undefined;
  return /^[A-Za-z0-9._:-]{1,120}$/.test(key) ? `h:${key}` : undefined;
}

function item<T extends z.ZodType>(schema: T, value: unknown, index: number): z.infer<T> {
  try {
    return parseBody(schema, value);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const param = `input[${index}]${error.options.param ? "." + error.options.param : ""}`;
    throw new ApiError("invalid_request", error.message.replace(/'([^']*)'/, `'${param}'`), { param });
  }
}

/** Tools declared inside the input: `additional_tools` items, and the tools a client-side tool search found. */
function toolsInInput(input: string | { type?: string }[]): DeclaredTool[] {
  if (typeof input === "string") return [];
  return input.flatMap((raw, index): DeclaredTool[] => {
    if (raw.type === "additional_tools") {
      return item(AdditionalToolsItem, raw, index).tools.map((tool, i) => ({
        tool,
        param: `input[${index}].tools[${i}]`,
      }));
    }
    if (raw.type === "tool_search_output") {
      return item(ToolSearchOutputItem, raw, index).tools.map((tool, i) => ({
        tool,
        param: `input[${index}].tools[${i}]`,
        discovered: true,
      }));
    }
    return [];
  });
}

function parts(content: string | ContentPart[], param: string): ChatPart[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part): ChatPart => {
    switch (part.type) {
      case "input_text":
      case "output_text":
        return { type: "text", text: part.text };
      case "refusal":
        return { type: "text", text: part.refusal };
      case "input_image":
        if (!part.image_url) refuse(param, "images by file_id need the Files API; send image_url (a data: URL).");
        return { type: "image", url: part.image_url };
      default:
        return refuse(param, `'${part.type}' content is not accepted (text and images only).`);
    }
  });
}

type Assistant = Extract<ChatMessage, { role: "assistant" }>;

function translateInput(
  instructions: string | undefined,
  input: string | { type?: string }[],
  shapes: Record<string, ToolShape>,
): ChatMessage[] {
  const leading: ChatPart[] = instructions ? [{ type: "text", text: instructions }] : [];
  const messages: ChatMessage[] = [];
  if (typeof input === "string") {
    messages.push({ role: "user", content: [{ type: "text", text: input }] });
    return withSystem(leading, messages);
  }
  let open: Assistant | undefined;
  const assistant = (startsTurn = false): Assistant => {
    if (open && !(startsTurn && (open.content.length > 0 || open.toolCalls?.length))) return open;
    open = { role: "assistant", content: [] };
    messages.push(open);
    return open;
  };
  const internalName = (name: string, namespace: string | null | undefined) =>
    namespace ? `${namespace}__${name}` : Object.keys(shapes).find((k) => shapes[k].name === name) ?? name;
  input.forEach((raw, index) => {
    const type = raw.type ?? "message";
    switch (type) {
      case "message": {
        const message = item(MessageItem, raw, index);
        const content = parts(message.content, `input[${index}].content`);
        if (message.role === "assistant") {
          assistant().content.push(...content);
          return;
        }
        open = undefined;
        if (message.role === "user") messages.push({ role: "user", content });
        else if (messages.length === 0) leading.push(...content);
        else messages.push({ role: "system", content });
        return;
      }
      case "reasoning": {
        const reasoning = item(ReasoningItem, raw, index);
        const text = (reasoning.encrypted_content ? decodeReasoning(reasoning.encrypted_content) : undefined) ??
          (reasoning.content?.map((c) => c.text).join("") || reasoning.summary.map((s) => s.text).join("\n\n"));
        const message = assistant(true);
        if (text) (message.reasoning ??= []).push({ text });
        return;
      }
      case "function_call": {
        const call = item(FunctionCallItem, raw, index);
        const name = internalName(call.name, call.namespace);
        (assistant().toolCalls ??= []).push({ id: call.call_id, name, arguments: call.arguments });
        return;
      }
      case "custom_tool_call": {
        const call = item(CustomToolCallItem, raw, index);
        const name = internalName(call.name, call.namespace);
        const args = JSON.stringify({ input: call.input });
        (assistant().toolCalls ??= []).push({ id: call.call_id, name, arguments: args });
        return;
      }
      case "function_call_output":
      case "custom_tool_call_output": {
        const schema = type === "function_call_output" ? FunctionCallOutputItem : CustomToolCallOutputItem;
        const result = item(schema, raw, index);
        open = undefined;
        messages.push({
          role: "tool",
          toolCallId: result.call_id,
          content: parts(result.output, `input[${index}].output`),
        });
        return;
      }
      case "tool_search_call": {
        const call = item(ToolSearchCallItem, raw, index);
        const args = typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments ?? {});
        (assistant().toolCalls ??= []).push({ id: call.call_id ?? TOOL_SEARCH, name: TOOL_SEARCH, arguments: args });
        return;
      }
      case "tool_search_output": {
        const result = item(ToolSearchOutputItem, raw, index);
        open = undefined;
        messages.push({
          role: "tool",
          toolCallId: result.call_id ?? TOOL_SEARCH,
          content: [{ type: "text", text: describeFoundTools(result.tools) }],
        });
        return;
      }
      case "additional_tools":
        return; // its tools were read with the request's own
      case "item_reference":
        return refuse(`input[${index}]`, "item references need stored responses; send the item itself.");
      default:
        return refuse(`input[${index}]`, `input items of type '${type}' are not accepted.`);
    }
  });
  return withSystem(leading, messages);
}

function withSystem(leading: ChatPart[], messages: ChatMessage[]): ChatMessage[] {
  if (leading.length === 0) return messages;
  return [{ role: "system", content: leading }, ...messages];
}
