/**
 * Maps an internal ChatRequest onto one Claude Code CLI run. Pure: no I/O, no clock.
 *
 * The CLI takes one new user turn per run, so a conversation is split in three:
 * - the system prompt: the leading system messages, joined (it replaces Claude Code's own agentic prompt);
 * - the history: every earlier turn in Anthropic's message shape (text, images, thinking with its signature, the
 *   caller's tool calls and their results), written as a session transcript that the CLI resumes, so the model sees
 *   real turns and no tool is run again;
 * - the final turn, one of two kinds:
 *   - `prompt`: a plain user turn, sent to the CLI on stdin;
 *   - `tool_results`: the caller answered tool calls. The CLI cannot take tool results as a prompt, so the last
 *     call is left open in the transcript behind a "deferred tool" marker; on resume the CLI runs that one call
 *     through the caller-tools MCP server, which answers with the caller's result. The other results sit in the
 *     transcript. Text the caller put beside the results becomes the CLI's resume prompt (CLAUDE_CODE_RESUME_PROMPT).
 *
 * The caller's tools reach the model as MCP tools named `mcp__api__<name>` (names sanitized as the CLI does);
 * history tool calls use the same names so the model sees one consistent set.
 */
import type { ChatMessage, ChatRequest, ContentPart, ToolDefinition } from "../../src/protocol/chat.ts";

/** The MCP server name the caller's tools are offered under. Short: tool names must fit in 64 characters. */
export const CALLER_TOOL_SERVER = "api";
export const CALLER_TOOL_PREFIX = `mcp__${CALLER_TOOL_SERVER}__`;

/** A request the CLI cannot serve as asked; reported to the caller as a 400 (code "invalid_request"). */
export class CliRequestError extends Error {
  readonly code = "invalid_request";
}

export type ImageSource =
  | { type: "base64"; media_type: string; data: string }
  | { type: "url"; url: string };

export type AnthropicBlock =
  | { type: "text"; text: string }
  | { type: "image"; source: ImageSource }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> }
  | {
    type: "tool_result";
    tool_use_id: string;
    content: string | Array<Extract<AnthropicBlock, { type: "text" | "image" }>>;
    is_error?: boolean;
  };

export interface AnthropicMessage {
  role: "user" | "assistant";
  content: AnthropicBlock[];
}

/** An MCP tool result (the caller's answer to one tool call). */
export interface McpToolResult {
  content: Array<{ type: "text"; text: string } | { type: "image"; data: string; mimeType: string }>;
  isError?: boolean;
}

/** The tool call left open for the CLI to "run" on resume, and the caller's result it gets back. */
export interface DeferredCall {
  toolUseId: string;
  /** The name the CLI knows (`mcp__api__...`). */
  name: string;
  input: Record<string, unknown>;
  result: McpToolResult;
}

export type FinalTurn =
  | { kind: "prompt"; content: AnthropicBlock[] }
  | { kind: "tool_results"; deferred: DeferredCall; resumePrompt?: string };

export interface ConversationPlan {
  systemPrompt: string;
  history: AnthropicMessage[];
  final: FinalTurn;
}

/** Claude Code's MCP tool-name rule: anything outside [A-Za-z0-9_-] becomes "_". */
export function sanitizeToolName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_-]/g, "_");
}

export function cliToolName(callerName: string): string {
  return CALLER_TOOL_PREFIX + sanitizeToolName(callerName);
}

/** The caller's tools as MCP tools, and the way back from a sanitized name to the caller's own. */
export function callerTools(request: ChatRequest): {
  tools: Array<{ name: string; description?: string; inputSchema: Record<string, unknown> }>;
  originalNames: Map<string, string>;
} {
  const offered: ToolDefinition[] = request.toolChoice === "none" ? [] : request.tools;
  const originalNames = new Map<string, string>();
  const tools = offered.map((tool) => {
    const name = sanitizeToolName(tool.name);
    originalNames.set(name, tool.name);
    return {
      name,
      ...(tool.description ? { description: tool.description } : {}),
      // MCP requires an object schema at the top; a bare `{}` means "any arguments".
      inputSchema: { type: "object", ...tool.parameters },
    };
  });
  return { tools, originalNames };
}

export function planConversation(request: ChatRequest): ConversationPlan {
  const messages: ChatMessage[] = request.prompt !== undefined && request.messages.length === 0
    ? [{ role: "user", content: [{ type: "text", text: request.prompt }] }]
    : request.messages;
  let start = 0;
  const systemTexts: string[] = [];
  while (start < messages.length && messages[start].role === "system") {
    // Each block is its own paragraph (Claude Code as a caller sends several system blocks).
    systemTexts.push(...messages[start].content.map((p) => (p.type === "text" ? p.text : "")));
    start++;
  }
  const turns = toAnthropicMessages(messages.slice(start));
  const last = turns.at(-1);
  if (!last) throw new CliRequestError("the conversation has no user message");
  if (last.role === "assistant") {
    throw new CliRequestError(
      "a CLI worker cannot continue a partial assistant message (prefill); end with a user turn",
    );
  }
  const systemPrompt = systemTexts.filter(Boolean).join("\n\n");
  const results = last.content.filter((b): b is Extract<AnthropicBlock, { type: "tool_result" }> =>
    b.type === "tool_result"
  );
  if (results.length === 0) {
    return { systemPrompt, history: turns.slice(0, -1), final: { kind: "prompt", content: last.content } };
  }
  return { systemPrompt, ...planToolResults(turns, last, results) };
}

function planToolResults(
  turns: AnthropicMessage[],
  last: AnthropicMessage,
  results: Array<Extract<AnthropicBlock, { type: "tool_result" }>>,
): Omit<ConversationPlan, "systemPrompt"> {
  const assistant = turns.at(-2);
  const calls = assistant?.role === "assistant"
    ? assistant.content.filter((b): b is Extract<AnthropicBlock, { type: "tool_use" }> => b.type === "tool_use")
    : [];
  const answered = new Set(results.map((r) => r.tool_use_id));
  // The open call is the last one the caller answered: the CLI puts its result after the others.
  const open = calls.findLast((call) => answered.has(call.id));
  if (!open) {
    throw new CliRequestError("tool results must answer tool calls of the assistant message right before them");
  }
  const others = last.content.filter((b) => b.type !== "tool_result");
  if (others.some((b) => b.type !== "text")) {
    throw new CliRequestError("a CLI worker cannot take images in the same turn as tool results");
  }
  const openResult = results.find((r) => r.tool_use_id === open.id)!;
  const earlierResults = results.filter((r) => r !== openResult);
  const history = turns.slice(0, -1);
  if (earlierResults.length > 0) history.push({ role: "user", content: earlierResults });
  const resumePrompt = others.map((b) => (b as { text: string }).text).join("\n\n").trim();
  return {
    history,
    final: {
      kind: "tool_results",
      deferred: { toolUseId: open.id, name: open.name, input: open.input, result: toMcpResult(openResult) },
      ...(resumePrompt ? { resumePrompt } : {}),
    },
  };
}

function toMcpResult(result: Extract<AnthropicBlock, { type: "tool_result" }>): McpToolResult {
  const blocks = typeof result.content === "string"
    ? [{ type: "text" as const, text: result.content }]
    : result.content;
  const content = blocks.map((block) => {
    if (block.type === "text") return { type: "text" as const, text: block.text };
    if (block.source.type === "base64") {
      return { type: "image" as const, data: block.source.data, mimeType: block.source.media_type };
    }
    return { type: "text" as const, text: `[image: ${block.source.url}]` };
  });
  return { content, ...(result.is_error ? { isError: true } : {}) };
}

/**
 * Internal messages → alternating Anthropic messages. Tool results and the user text after them share one user
 * message (as in Anthropic's API); system messages inside the conversation become user text in place.
 */
export function toAnthropicMessages(messages: ChatMessage[]): AnthropicMessage[] {
  const out: AnthropicMessage[] = [];
  const push = (role: AnthropicMessage["role"], content: AnthropicBlock[]) => {
    if (content.length === 0) return;
    const previous = out.at(-1);
    if (previous?.role === role) previous.content.push(...content);
    else out.push({ role, content });
  };
  for (const message of messages) {
    switch (message.role) {
      case "system":
      case "user":
        push("user", message.content.map(toBlock));
        break;
      case "tool":
        push("user", [{
          type: "tool_result",
          tool_use_id: message.toolCallId,
          content: message.content.every((p) => p.type === "text")
            ? textOf(message.content)
            : message.content.map(toBlock) as Array<Extract<AnthropicBlock, { type: "text" | "image" }>>,
          ...(message.isError ? { is_error: true } : {}),
        }]);
        break;
      case "assistant": {
        const blocks: AnthropicBlock[] = [];
        for (const reasoning of message.reasoning ?? []) {
          // Thinking without a signature (e.g. from an OpenAI-style caller) would be refused by the API.
          if (reasoning.redacted) blocks.push({ type: "redacted_thinking", data: reasoning.redacted });
          else if (reasoning.signature) {
            blocks.push({ type: "thinking", thinking: reasoning.text, signature: reasoning.signature });
          }
        }
        for (const part of message.content) {
          if (part.type === "text" && part.text) blocks.push({ type: "text", text: part.text });
        }
        for (const call of message.toolCalls ?? []) {
          blocks.push({ type: "tool_use", id: call.id, name: cliToolName(call.name), input: parseArguments(call) });
        }
        push("assistant", blocks);
        break;
      }
    }
  }
  return out;
}

function toBlock(part: ContentPart): Extract<AnthropicBlock, { type: "text" | "image" }> {
  if (part.type === "text") return { type: "text", text: part.text };
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(part.url);
  if (data) return { type: "image", source: { type: "base64", media_type: data[1], data: data[2] } };
  return { type: "image", source: { type: "url", url: part.url } };
}

function parseArguments(call: { arguments: string }): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(call.arguments || "{}");
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // The model wrote arguments that are not JSON: keep them visible rather than lose them.
  }
  return { arguments: call.arguments };
}

function textOf(parts: ContentPart[]): string {
  return parts.map((p) => (p.type === "text" ? p.text : "")).join("");
}
