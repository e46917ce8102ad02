/**
 * The `web_search` tool: Brave Search's web search API (GET …/res/v1/web/search?q=…, key in
 * `X-Subscription-Token`). The key is a per-tool credential the router attaches to each call
 * (AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY); without it the call is a clear tool error. The endpoint is configurable
 * (--web-search-url) so tests and proxies can stand in for Brave.
 */
import { z } from "zod";
import { defineTool, errorMessage, type ServerTool, ToolError } from "./tool.ts";

export const BRAVE_SEARCH_URL = "https://api.search.brave.com/res/v1/web/search";

export interface WebSearchOptions {
  endpoint?: string;
  timeoutMs?: number;
}

const spec = defineTool(
  "web_search",
  "Search the web (Brave Search). Returns the top results with title, URL and a short description.",
  z.object({
    query: z.string().min(1).max(400).describe("The search query."),
    count: z.number().int().min(1).max(20).default(5).describe("How many results to return."),
    offset: z.number().int().min(0).max(9).default(0).describe("Page of results to return (0 = first)."),
    freshness: z.enum(["pd", "pw", "pm", "py"]).optional().describe(
      "Only results from the past day (pd), week (pw), month (pm) or year (py).",
    ),
    country: z.string().length(2).optional().describe("Two-letter country code to search from, e.g. US."),
  }).strict(),
);

const BraveResponse = z.object({
  web: z.object({
    results: z.array(z.object({
      title: z.string().default(""),
      url: z.string(),
      description: z.string().optional(),
      age: z.string().optional(),
      extra_snippets: z.array(z.string()).optional(),
    })).default([]),
  }).optional(),
});

export function webSearchTool(options: WebSearchOptions = {}): ServerTool {
  const endpoint = options.endpoint ?? BRAVE_SEARCH_URL;
  const timeoutMs = options.timeoutMs ?? 15_000;
  return {
    definition: spec.definition,
    async run(rawArgs, ctx) {
      const args = spec.parse(rawArgs);
      const key = ctx.credentials.BRAVE_SEARCH_API_KEY;
      if (!key) {
        throw new ToolError(
          "web_search is not configured: the router has no Brave Search API key (set AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY).",
        );
      }
      const url = new URL(endpoint);
      url.searchParams.set("q", args.query);
      url.searchParams.set("count", String(args.count));
      if (args.offset) url.searchParams.set("offset", String(args.offset));
      if (args.freshness) url.searchParams.set("freshness", args.freshness);
      if (args.country) url.searchParams.set("country", args.country.toUpperCase());
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
      let response: Response;
      try {
        // Never follow a redirect: fetch would carry the subscription token to wherever it points.
        response = await fetch(url, {
          headers: { accept: "application/json", "x-subscription-token": key },
          redirect: "manual",
          signal,
        });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        throw new ToolError(
          `the search service could not be reached: ${signal.aborted ? "timed out" : errorMessage(err)}`,
        );
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new ToolError(statusMessage(response.status));
      }
      let parsed;
      try {
        parsed = BraveResponse.parse(await response.json());
      } catch {
        throw new ToolError("the search service answered with an unexpected body");
      }
      const results = parsed.web?.results ?? [];
      if (results.length === 0) return `No results for "${args.query}".`;
      return results.map((r, i) => {
        const lines = [`${i + 1 + args.offset * args.count}. ${stripTags(r.title)}`, `   ${r.url}`];
        if (r.description) lines.push(`   ${stripTags(r.description)}`);
        for (const s of r.extra_snippets ?? []) lines.push(`   ${stripTags(s)}`);
        if (r.age) lines.push(`   (${r.age})`);
        return lines.join("\n");
      }).join("\n\n");
    },
  };
}

function statusMessage(status: number): string {
  if (status === 401 || status === 403) {
    return "the search service rejected the API key (AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY)";
  }
  if (status >= 300 && status < 400) {
    return "the search service answered with a redirect, which is not followed (the API key goes nowhere else)";
  }
  if (status === 429) return "the search service's rate limit was reached; try again later";
  if (status === 422 || status === 400) return "the search service refused the query";
  return `the search service failed (HTTP ${status})`;
}

/** Brave marks matches with <strong>; plain text reads better for a model. */
function stripTags(text: string): string {
  return text.replace(/<[^<>]{1,200}>/g, "").replace(/&amp;/g, "&").replace(/&quot;/g, '"').replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">");
}
