/**
 * Anthropic's server tool blocks both ways: the router's server-tool events (src/protocol/events.ts) as
 * `web_search_tool_result` / `web_fetch_tool_result` blocks, and those blocks, sent back by the caller in a later
 * turn, as the tool message the model read. Pure.
 *
 * - web_search: one `web_search_result` per hit with `title`, `url`, `page_age` (null when unknown) and
 *   `encrypted_content`, Auxot's own opaque token (src/tools/web-results.ts) carrying the snippet the model read.
 * - web_fetch: a `web_fetch_result` with the page as a plain-text `document` and `retrieved_at`.
 * - Failures: `web_search_tool_result_error` / `web_fetch_tool_result_error` with Anthropic's `error_code`.
 */
import type { ChatMessage } from "../../protocol/chat.ts";
import type { ServerToolEvent, WebSearchHit } from "../../protocol/events.ts";
import { decodeHit, encodeHit, searchResultText, serverToolErrorText } from "../../tools/web-results.ts";

type ResultEvent = Extract<ServerToolEvent, { type: "server_tool_result" }>;

export type WebSearchResultContent =
  | { type: "web_search_result"; title: string; url: string; encrypted_content: string; page_age: string | null }[]
  | { type: "web_search_tool_result_error"; error_code: string };

export type WebFetchResultContent =
  | {
    type: "web_fetch_result";
    url: string;
    content: {
      type: "document";
      source: { type: "text"; media_type: "text/plain"; data: string };
      title: string | null;
    };
    retrieved_at: string;
  }
  | { type: "web_fetch_tool_result_error"; error_code: string };

export type ServerResultBlock =
  | { type: "web_search_tool_result"; tool_use_id: string; content: WebSearchResultContent }
  | { type: "web_fetch_tool_result"; tool_use_id: string; content: WebFetchResultContent };

/** The result block for a server tool's result event. */
export function serverResultBlock(event: ResultEvent): ServerResultBlock {
  if (event.tool === "web_fetch") {
    const content: WebFetchResultContent = event.errorCode || !event.document
      ? { type: "web_fetch_tool_result_error", error_code: event.errorCode ?? "unavailable" }
      : {
        type: "web_fetch_result",
        url: event.document.url,
        content: {
          type: "document",
          source: { type: "text", media_type: "text/plain", data: event.document.text },
          title: null,
        },
        retrieved_at: event.document.retrievedAt,
      };
    return { type: "web_fetch_tool_result", tool_use_id: event.toolUseId, content };
  }
  const content: WebSearchResultContent = event.errorCode
    ? { type: "web_search_tool_result_error", error_code: event.errorCode }
    : (event.results ?? []).map((hit) => ({
      type: "web_search_result" as const,
      title: hit.title,
      url: hit.url,
      encrypted_content: encodeHit(hit),
      page_age: hit.pageAge ?? null,
    }));
  return { type: "web_search_tool_result", tool_use_id: event.toolUseId, content };
}

/** A tool call's input as an object (anything else counts as no arguments). */
export function inputObject(input: unknown): Record<string, unknown> {
  return typeof input === "object" && input !== null && !Array.isArray(input) ? { ...input } : {};
}

/** A result block sent back by the caller → the tool message the model read when it was fresh. */
export function serverToolResultMessage(
  block: { type: "web_search_tool_result" | "web_fetch_tool_result"; tool_use_id: string; content: unknown },
  input: Record<string, unknown> | undefined,
): ChatMessage {
  const tool = block.type === "web_fetch_tool_result" ? "web_fetch" : "web_search";
  const message = (text: string, isError: boolean): ChatMessage => ({
    role: "tool",
    toolCallId: block.tool_use_id,
    content: [{ type: "text", text }],
    ...(isError ? { isError: true } : {}),
  });
  const content = block.content;
  if (!Array.isArray(content)) {
    const object = inputObject(content);
    if (typeof object.error_code === "string") return message(serverToolErrorText(tool, object.error_code), true);
    if (tool === "web_fetch") {
      const source = inputObject(inputObject(object.content).source);
      const text = typeof source.data === "string" ? source.data : "";
      return message(text || "(empty page)", false);
    }
    return message(serverToolErrorText(tool, "unavailable"), true);
  }
  const hits: WebSearchHit[] = content.map(inputObject).map((result) => {
    const decoded = typeof result.encrypted_content === "string" ? decodeHit(result.encrypted_content) : undefined;
    if (decoded) return decoded;
    // Not Auxot's token (another server's result): what the block itself says.
    const pageAge = typeof result.page_age === "string" ? result.page_age : undefined;
    return {
      title: String(result.title ?? ""),
      url: String(result.url ?? ""),
      snippet: "",
      ...(pageAge ? { pageAge } : {}),
    };
  });
  const query = typeof input?.query === "string" ? input.query : "";
  return message(searchResultText(query, hits), false);
}
