/**
 * Anthropic Messages request body → the internal ChatRequest. Pure: no I/O, no clock.
 *
 * Folding rules (the internal request has OpenAI-like roles; Anthropic puts more inside one message):
 * - `system` (string or text blocks) becomes one leading system message; each block stays its own text part so a
 *   worker can see block boundaries (Claude Code's first block changes on every request, the others do not).
 * - `role: "system"` entries inside `messages` stay system messages in place. The Claude Code CLI sends its
 *   reminders this way mid-conversation; moving them to the front would change their meaning (and invalidate a
 *   worker's prompt cache on every turn), dropping them would lose instructions.
 * - A user turn's `tool_result` blocks become `tool` messages, in their order, followed by one user message with
 *   the turn's other blocks (text, images, documents) if it has any: tool results must directly follow the
 *   assistant's tool calls in the internal shape, and the text Claude Code puts beside them is kept.
 * - Images: base64 → `data:` URL with its media type; URL images pass through. Plain-text and content documents
 *   become text; PDF documents cannot be read by the workers and become a short text placeholder, so a
 *   conversation that once read a PDF keeps working. Search results and tool references become text.
 * - Assistant `thinking` → a reasoning part with its signature untouched (an empty signature counts as none);
 *   `redacted_thinking` → a reasoning part with `redacted` data; `tool_use` → a tool call whose arguments are
 *   `JSON.stringify(input)`.
 * - `tool_choice`: auto → "auto", any → "required", tool → {name}, none → "none"; `disable_parallel_tool_use` has
 *   no internal equivalent and is ignored.
 * - `thinking`: enabled → {enabled, budgetTokens}; adaptive and between_tools → enabled without a budget;
 *   disabled → {enabled: false}. `output_config.effort` becomes `reasoning.effort` (xhigh and max → "high"); an
 *   effort without `thinking` turns reasoning on. `output_config.format` (json_schema) becomes `responseFormat`.
 * - `conversationKey`: the session id inside Claude Code's `metadata.user_id` (a JSON string with `session_id`,
 *   or the older `user_<hash>_account_<uuid>_session_<uuid>` form). Any other `user_id` names a user, not a
 *   conversation, and is not used; the router may still set a key from the `x-claude-code-session-id` header,
 *   which carries the same session id.
 * - Server tools: `web_search_*` / `web_fetch_*` declarations become `serverTools` (the router's tool loop runs
 *   them on tools workers, src/tools/declared.ts). Sent back in an assistant turn, `server_tool_use` becomes a
 *   tool call and its `web_search_tool_result` / `web_fetch_tool_result` a tool message holding the text the
 *   model read (decoded from Auxot's `encrypted_content` tokens); the assistant turn is split around them, as the
 *   tool loop built it, so the prompt renders the same and the worker's KV cache still matches.
 * - `cache_control`, `context_management`, `defer_loading`, `metadata` otherwise, and other unknown fields are
 *   ignored: prompt caching here is automatic (prefix reuse on a worker), and every tool is always loaded.
 */
import type {
  ChatMessage,
  ChatRequest,
  ContentPart,
  ReasoningPart,
  ToolCall,
  ToolChoice,
} from "../../protocol/chat.ts";
import type { DeclaredServerTool } from "../../protocol/chat.ts";
import { inputObject, serverToolResultMessage } from "./server-blocks.ts";
import {
  type AssistantBlock,
  type CountTokensRequest,
  type DocumentBlock,
  type ImageBlock,
  type MessageParam,
  parseCountTokensRequest,
  parseMessagesRequest,
  type SearchResultBlock,
  type TextBlock,
  type ToolChoiceParam,
  type ToolParam,
  type ToolResultContentBlock,
  type UserBlock,
  type WebToolParam,
} from "./schema.ts";

/** Validates a `/v1/messages` body and translates it. Throws ApiError("invalid_request") naming the field. */
export function toChatRequest(body: unknown): ChatRequest {
  return translate(parseMessagesRequest(body));
}

/** The same translation for a `/v1/messages/count_tokens` body (no `max_tokens` needed). */
export function toCountTokensRequest(body: unknown): ChatRequest {
  return translate(parseCountTokensRequest(body));
}

function translate(request: CountTokensRequest): ChatRequest {
  const tools = (request.tools ?? []).filter(isClientTool).map((tool) => ({
    name: tool.name,
    ...(tool.description ? { description: tool.description } : {}),
    parameters: tool.input_schema,
  }));
  const serverTools = (request.tools ?? []).flatMap((tool) => isClientTool(tool) ? [] : [toDeclaredTool(tool)]);
  const toolChoice = request.tool_choice ? toToolChoice(request.tool_choice) : "auto";
  // Whether a forced tool exists is checked where server tools are known too (src/tools/loop.ts).
  const messages: ChatMessage[] = [];
  const system = request.system ?? [];
  const systemParts = typeof system === "string" ? (system ? [textPart(system)] : []) : system.map(fromTextBlock);
  if (systemParts.length > 0) messages.push({ role: "system", content: systemParts });
  for (const message of request.messages) messages.push(...toChatMessages(message));

  const reasoning = toReasoning(request);
  const responseFormat = request.output_config?.format;
  const conversationKey = sessionIdOf(request.metadata?.user_id);
  return {
    requestedModel: request.model,
    messages,
    tools,
    toolChoice,
    stop: request.stop_sequences ?? [],
    ...(request.max_tokens != null ? { maxTokens: request.max_tokens } : {}),
    ...(request.temperature != null ? { temperature: request.temperature } : {}),
    ...(request.top_p != null ? { topP: request.top_p } : {}),
    ...(request.top_k != null ? { topK: request.top_k } : {}),
    ...(reasoning ? { reasoning } : {}),
    ...(responseFormat ? { responseFormat: { type: "json_schema" as const, schema: responseFormat.schema } } : {}),
    ...(conversationKey ? { conversationKey } : {}),
    ...(serverTools.length > 0 ? { serverTools } : {}),
  };
}

function toChatMessages(message: MessageParam): ChatMessage[] {
  if (typeof message.content === "string") {
    return [{ role: message.role, content: [textPart(message.content)] }];
  }
  switch (message.role) {
    case "system":
      return [{ role: "system", content: message.content.map(fromTextBlock) }];
    case "assistant":
      return fromAssistantTurn(message.content);
    case "user":
      return fromUserBlocks(message.content);
  }
}

function fromUserBlocks(blocks: UserBlock[]): ChatMessage[] {
  const toolMessages: ChatMessage[] = [];
  const userParts: ContentPart[] = [];
  for (const block of blocks) {
    if (block.type === "tool_result") {
      const content = block.content ?? [];
      toolMessages.push({
        role: "tool",
        toolCallId: block.tool_use_id,
        content: typeof content === "string" ? [textPart(content)] : content.map(fromToolResultContent),
        ...(block.is_error ? { isError: true } : {}),
      });
    } else {
      userParts.push(fromToolResultContent(block));
    }
  }
  // A turn that was only tool results needs no (empty) user message after them.
  if (toolMessages.length > 0 && userParts.length === 0) return toolMessages;
  return [...toolMessages, { role: "user", content: userParts }];
}

/**
 * An assistant turn. Server tool results inside it end the message so far (with its calls), become tool
 * messages, and the blocks after them start a new assistant message.
 */
function fromAssistantTurn(blocks: AssistantBlock[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  let pending: AssistantBlock[] = [];
  const calls = new Map<string, Record<string, unknown>>();
  for (const block of blocks) {
    if (block.type === "server_tool_use") calls.set(block.id, inputObject(block.input));
    if (block.type !== "web_search_tool_result" && block.type !== "web_fetch_tool_result") {
      pending.push(block);
      continue;
    }
    if (pending.length > 0) messages.push(fromAssistantBlocks(pending));
    pending = [];
    messages.push(serverToolResultMessage(block, calls.get(block.tool_use_id)));
  }
  if (pending.length > 0 || messages.length === 0) messages.push(fromAssistantBlocks(pending));
  return messages;
}

function fromAssistantBlocks(blocks: AssistantBlock[]): ChatMessage {
  const content: ContentPart[] = [];
  const reasoning: ReasoningPart[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of blocks) {
    switch (block.type) {
      case "text":
        content.push(fromTextBlock(block));
        break;
      case "thinking":
        reasoning.push({ text: block.thinking, ...(block.signature ? { signature: block.signature } : {}) });
        break;
      case "redacted_thinking":
        reasoning.push({ text: "", redacted: block.data });
        break;
      case "tool_use":
      case "server_tool_use":
        toolCalls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) });
        break;
    }
  }
  return {
    role: "assistant",
    content,
    ...(reasoning.length > 0 ? { reasoning } : {}),
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
  };
}

/** Blocks that may appear in a user turn or inside a tool_result, as one content part each. */
function fromToolResultContent(block: ToolResultContentBlock): ContentPart {
  switch (block.type) {
    case "text":
      return fromTextBlock(block);
    case "image":
      return fromImageBlock(block);
    case "document":
      return fromDocumentBlock(block);
    case "search_result":
      return fromSearchResult(block);
    case "tool_reference":
      // Every tool is always offered to the model here, so a reference only says which one was found.
      return textPart(`Tool reference: ${block.tool_name}`);
  }
}

function fromTextBlock(block: TextBlock): ContentPart {
  return textPart(block.text);
}

function fromImageBlock(block: ImageBlock): ContentPart {
  const source = block.source;
  if (source.type === "url") return { type: "image", url: source.url };
  return { type: "image", url: `data:${source.media_type};base64,${source.data}`, mediaType: source.media_type };
}

function fromDocumentBlock(block: DocumentBlock): ContentPart {
  const title = block.title ? `${block.title}\n\n` : "";
  const { source } = block;
  if (source.type === "text" && typeof source.data === "string") return textPart(title + source.data);
  if (source.type === "content" && source.content != null) {
    const content = source.content;
    if (typeof content === "string") return textPart(title + content);
    const texts = content.flatMap((part) => (part.type === "text" ? [part.text] : []));
    return textPart(title + texts.join("\n\n"));
  }
  const kind = source.media_type ?? source.type;
  return textPart(`[Document${block.title ? ` "${block.title}"` : ""} (${kind}) omitted: this server cannot read it]`);
}

function fromSearchResult(block: SearchResultBlock): ContentPart {
  return textPart([block.title, block.source, ...block.content.map((part) => part.text)].join("\n\n"));
}

function textPart(text: string): ContentPart {
  return { type: "text", text };
}

function toToolChoice(choice: ToolChoiceParam): ToolChoice {
  switch (choice.type) {
    case "auto":
      return "auto";
    case "any":
      return "required";
    case "none":
      return "none";
    case "tool":
      return { name: choice.name };
  }
}

const EFFORTS: Record<string, "low" | "medium" | "high"> = {
  low: "low",
  medium: "medium",
  high: "high",
  xhigh: "high",
  max: "high",
};

function toReasoning(request: CountTokensRequest): ChatRequest["reasoning"] {
  const effort = request.output_config?.effort ? EFFORTS[request.output_config.effort] : undefined;
  const withEffort = effort ? { effort } : {};
  const thinking = request.thinking;
  if (!thinking) return effort ? { enabled: true, effort } : undefined;
  switch (thinking.type) {
    case "enabled":
      return { enabled: true, budgetTokens: thinking.budget_tokens, ...withEffort };
    case "disabled":
      return { enabled: false, ...withEffort };
    case "adaptive":
    case "between_tools":
      return { enabled: true, ...withEffort };
  }
}

/** The conversation key must fit the worker protocol's cachedConversations entries. */
const MAX_KEY_LENGTH = 200;

/** Claude Code's session id from `metadata.user_id`, or undefined when the value is not one of its forms. */
function sessionIdOf(userId: string | null | undefined): string | undefined {
  if (!userId) return undefined;
  let sessionId: string | undefined;
  if (userId.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(userId);
      if (typeof parsed === "object" && parsed !== null && "session_id" in parsed) {
        const value = parsed.session_id;
        if (typeof value === "string") sessionId = value;
      }
    } catch {
      return undefined;
    }
  } else {
    sessionId = /_session_([A-Za-z0-9-]+)$/.exec(userId)?.[1];
  }
  return sessionId && sessionId.length <= MAX_KEY_LENGTH ? sessionId : undefined;
}

function isClientTool(tool: ToolParam | WebToolParam): tool is ToolParam {
  return tool.type == null || tool.type === "custom";
}

function toDeclaredTool(tool: WebToolParam): DeclaredServerTool {
  const country = tool.user_location?.country;
  return {
    tool: tool.type.startsWith("web_fetch_") ? "web_fetch" : "web_search",
    name: tool.name,
    type: tool.type,
    ...(tool.max_uses != null ? { maxUses: tool.max_uses } : {}),
    ...(tool.allowed_domains?.length ? { allowedDomains: tool.allowed_domains } : {}),
    ...(tool.blocked_domains?.length ? { blockedDomains: tool.blocked_domains } : {}),
    ...(country && /^[A-Za-z]{2}$/.test(country) ? { country: country.toUpperCase() } : {}),
  };
}
