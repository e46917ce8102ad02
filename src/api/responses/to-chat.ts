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
import type {
  ChatMessage,
  ChatRequest,
  ContentPart as ChatPart,
  ToolChoice,
  ToolDefinition,
} from "../../protocol/chat.ts";
import { parseBody } from "../openai/to-chat.ts";
import { checkGrammar } from "./custom-tools.ts";
import {
  AllowedToolsChoice,
  type ContentPart,
  CustomTool,
  CustomToolCallItem,
  CustomToolCallOutputItem,
  DROPPED_HOSTED_TOOLS,
  FunctionCallItem,
  FunctionCallOutputItem,
  FunctionTool,
  MessageItem,
  NamedToolChoice,
  NamespaceTool,
  ReasoningItem,
  ResponseCreateRequest,
} from "./schema.ts";

/** How a call to an internal tool is shown to the caller. */
export interface ToolShape {
  kind: "function" | "custom";
  name: string;
  namespace?: string;
  /** A custom tool's grammar, against which its input is checked. */
  grammar?: { syntax: "lark" | "regex"; definition: string };
}

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

  const { tools, shapes } = translateTools(body.tools ?? []);
  const { toolChoice, offered } = translateToolChoice(body.tool_choice, tools, shapes);
  const messages = translateInput(body.instructions ?? undefined, body.input ?? [], shapes);
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

function translateTools(wire: { type: string }[]): { tools: ToolDefinition[]; shapes: Record<string, ToolShape> } {
  const tools: ToolDefinition[] = [];
  const shapes: Record<string, ToolShape> = {};
  const add = (definition: ToolDefinition, shape: ToolShape) => {
    if (shapes[definition.name]) {
      throw new ApiError("invalid_request", `Duplicate tool name '${definition.name}' in 'tools'.`, { param: "tools" });
    }
    tools.push(definition);
    shapes[definition.name] = shape;
  };
  const one = (tool: z.infer<typeof FunctionTool> | z.infer<typeof CustomTool>, param: string, namespace?: string) => {
    const name = namespace ? `${namespace}__${tool.name}` : tool.name;
    const description = tool.description ?? undefined;
    if (tool.type === "function") {
      add(
        { name, description, parameters: tool.parameters ?? { type: "object", properties: {} } },
        { kind: "function", name: tool.name, namespace },
      );
      return;
    }
    const format = tool.format?.type === "grammar" ? tool.format : undefined;
    if (format) checkGrammar(format, `${param}.format`);
    add({
      name,
      description,
      parameters: {
        type: "object",
        properties: { input: { type: "string", description: "The tool's whole input, as free-form text." } },
        required: ["input"],
      },
      freeform: format ? { syntax: format.syntax, definition: format.definition } : { syntax: "text" },
    }, { kind: "custom", name: tool.name, namespace, grammar: format });
  };
  wire.forEach((tool, index) => {
    const at = <T extends z.ZodType>(schema: T) => {
      try {
        return parseBody(schema, tool);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        throw new ApiError("invalid_request", `tools[${index}]: ${error.message}`, { param: `tools[${index}]` });
      }
    };
    const param = `tools[${index}]`;
    if (tool.type === "function") one(at(FunctionTool), param);
    else if (tool.type === "custom") one(at(CustomTool), param);
    else if (tool.type === "namespace") {
      const namespace = at(NamespaceTool);
      namespace.tools.forEach((inner, i) => one(inner, `${param}.tools[${i}]`, namespace.name));
    } else if (!DROPPED_HOSTED_TOOLS.has(tool.type)) {
      refuse(`tools[${index}]`, `hosted tool type '${tool.type}' is not available; declare a function tool instead.`);
    }
  });
  return { tools, shapes };
}

function translateToolChoice(
  wire: z.infer<typeof ResponseCreateRequest>["tool_choice"],
  tools: ToolDefinition[],
  shapes: Record<string, ToolShape>,
): { toolChoice: ToolChoice; offered: ToolDefinition[] } {
  if (wire == null) return { toolChoice: "auto", offered: tools };
  if (typeof wire === "string") return { toolChoice: wire, offered: tools };
  const at = <T extends z.ZodType>(schema: T) => {
    const parsed = schema.safeParse(wire);
    if (parsed.success) return parsed.data as z.infer<T>;
    throw new ApiError("invalid_request", `Invalid 'tool_choice': ${parsed.error.issues[0].message}`, {
      param: "tool_choice",
    });
  };
  if (wire.type === "allowed_tools") {
    const choice = at(AllowedToolsChoice);
    const allowed = new Set(choice.tools.map((t) => t.name ?? ""));
    return { toolChoice: choice.mode, offered: tools.filter((t) => allowed.has(shapes[t.name].name)) };
  }
  if (wire.type === "function" || wire.type === "custom") {
    const choice = at(NamedToolChoice);
    const match = tools.find((t) => shapes[t.name].name === choice.name && shapes[t.name].kind === choice.type);
    // An unknown name is reported by the router with the server tools in view (src/tools/loop.ts).
    return { toolChoice: { name: match?.name ?? choice.name }, offered: tools };
  }
  return refuse("tool_choice", `hosted tool type '${wire.type}' is not available.`);
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
