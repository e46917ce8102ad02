/**
 * Server tools a caller declared by type (Anthropic's `web_search_20250305`, `web_fetch_20250910`, ...), as the
 * tool loop (loop.ts) runs them: offered to the model under the caller's name when a tools worker serves the
 * underlying tool (refused with a 400 otherwise), each call run on a tools worker with the declaration's rules
 * applied — `max_uses`, `allowed_domains` / `blocked_domains`, `user_location` — and reported to the caller as
 * `server_tool_use` and `server_tool_result` events (src/protocol/events.ts), which the Anthropic flavour renders
 * as Anthropic's blocks.
 *
 * Decisions:
 * - Domain rules filter web_search hits after the search (the search service is not asked to narrow it), and
 *   refuse a web_fetch URL before it is fetched (`url_not_allowed`).
 * - `user_location.country` becomes the search's `country` unless the model set one; city, region and timezone
 *   have no equivalent in the search service and are ignored.
 * - A call past `max_uses` is not run: the model reads a `max_uses_exceeded` error and must answer without it.
 * - A web_fetch the tools worker refuses or fails (bad URL, unreachable, refused address) is
 *   `url_not_accessible`; a call no tools worker could run is `unavailable`.
 */
import { ApiError } from "../http/errors.ts";
import type { DeclaredServerTool, ToolDefinition } from "../protocol/chat.ts";
import type { ServerToolEvent, WebSearchHit } from "../protocol/events.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { runServerTool } from "./run.ts";
import { domainAllowed, parseSearchText, searchResultText, serverToolErrorText } from "./web-results.ts";

/** The tool definitions to offer for the declared tools; throws a 400 naming the first one nobody serves. */
export function declaredDefinitions(declared: DeclaredServerTool[], catalog: ToolDefinition[]): ToolDefinition[] {
  return declared.map((tool, i) => {
    const served = catalog.find((t) => t.name === tool.tool);
    if (!served) {
      throw new ApiError(
        "invalid_request",
        `tools.${i}: the ${tool.type} server tool is not available: no tools worker serving ${tool.tool} is connected`,
        { param: `tools.${i}` },
      );
    }
    return { ...served, name: tool.name };
  });
}

export interface DeclaredOutcome {
  /** The events the caller sees: the call, then its result. */
  events: ServerToolEvent[];
  /** What the model reads. */
  text: string;
  isError: boolean;
}

/** A declared tool's call that was not run: the caller sees it fail with Anthropic's `error_code`. */
export function declaredFailure(
  tool: DeclaredServerTool,
  call: { id: string; args: Record<string, unknown> },
  errorCode: string,
): DeclaredOutcome {
  return {
    events: [
      { type: "server_tool_use", id: call.id, name: tool.name, input: call.args },
      { type: "server_tool_result", toolUseId: call.id, tool: tool.tool, errorCode },
    ],
    text: serverToolErrorText(tool.tool, errorCode),
    isError: true,
  };
}

/** Runs one call of a declared tool. `uses` counts the calls of this tool so far in this answer (this one included). */
export async function runDeclared(
  ctx: RouterContext,
  tool: DeclaredServerTool,
  call: { id: string; args: Record<string, unknown> },
  uses: number,
  signal: AbortSignal,
): Promise<DeclaredOutcome> {
  const use: ServerToolEvent = { type: "server_tool_use", id: call.id, name: tool.name, input: call.args };
  const fail = (errorCode: string) => declaredFailure(tool, call, errorCode);
  if (tool.maxUses !== undefined && uses > tool.maxUses) return fail("max_uses_exceeded");

  if (tool.tool === "web_fetch") {
    const url = typeof call.args.url === "string" ? call.args.url : "";
    if (!url) return fail("invalid_tool_input");
    if (!domainAllowed(url, tool.allowedDomains, tool.blockedDomains)) return fail("url_not_allowed");
    const outcome = await runServerTool(ctx, { name: "web_fetch", arguments: call.args }, signal);
    if (!outcome.ok) return fail(outcome.code === "tool_error" ? "url_not_accessible" : "unavailable");
    const document = { url, text: outcome.content, retrievedAt: new Date(ctx.now()).toISOString() };
    return {
      events: [use, { type: "server_tool_result", toolUseId: call.id, tool: "web_fetch", document }],
      text: outcome.content || "(empty page)",
      isError: false,
    };
  }

  const query = typeof call.args.query === "string" ? call.args.query : "";
  if (!query) return fail("invalid_tool_input");
  if (query.length > 400) return fail("query_too_long");
  const args = { ...call.args };
  if (tool.country && args.country === undefined) args.country = tool.country;
  const outcome = await runServerTool(ctx, { name: "web_search", arguments: args }, signal);
  if (!outcome.ok) {
    if (outcome.code !== "tool_error") return fail("unavailable");
    return fail(/rate limit/.test(outcome.message) ? "too_many_requests" : "unavailable");
  }
  const results: WebSearchHit[] = parseSearchText(outcome.content)
    .filter((hit) => domainAllowed(hit.url, tool.allowedDomains, tool.blockedDomains));
  return {
    events: [use, { type: "server_tool_result", toolUseId: call.id, tool: "web_search", results }],
    text: searchResultText(query, results),
    isError: false,
  };
}
