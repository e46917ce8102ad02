/**
 * What the router knows about web_search and web_fetch results, for server tools a caller declared (Anthropic's
 * `web_search_*` / `web_fetch_*`): reading the tools worker's result text into hits, the text the model reads, the
 * domain rules (`allowed_domains` / `blocked_domains`) and the opaque `encrypted_content` token.
 *
 * The same functions turn a conversation the caller sends back (its web_search_tool_result blocks) into the text
 * the model read when the results were fresh, so a follow-up turn renders the same prompt and reuses the KV cache.
 *
 * The tools worker's web_search result (workers/tools/web-search.ts) is text: blocks separated by a blank line,
 * each `N. title`, `   url`, snippet lines, and an optional `   (age)` last line. It is parsed here rather than
 * asked for as JSON so the tool stays one tool for every caller (Chat Completions callers read the same text).
 */
import type { WebSearchHit } from "../protocol/events.ts";

/** The hits in a web_search result; none for "No results" or text in another form. */
export function parseSearchText(text: string): WebSearchHit[] {
  const hits: WebSearchHit[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split("\n");
    const title = /^\d+\.\s(.*)$/.exec(lines[0] ?? "")?.[1];
    const url = lines[1]?.trim();
    if (title === undefined || !url || !/^https?:\/\//.test(url)) continue;
    const rest = lines.slice(2).map((l) => l.trim()).filter((l) => l !== "");
    const age = rest.length > 0 ? /^\((.*)\)$/.exec(rest[rest.length - 1])?.[1] : undefined;
    if (age !== undefined) rest.pop();
    hits.push({ title, url, snippet: rest.join("\n"), ...(age ? { pageAge: age } : {}) });
  }
  return hits;
}

/** The text the model reads for these hits (the tools worker's own layout, numbered from 1). */
export function searchResultText(query: string, hits: WebSearchHit[]): string {
  if (hits.length === 0) return `No results for "${query}".`;
  return hits.map((hit, i) => {
    const lines = [`${i + 1}. ${hit.title}`, `   ${hit.url}`];
    if (hit.snippet) lines.push(...hit.snippet.split("\n").map((l) => `   ${l}`));
    if (hit.pageAge) lines.push(`   (${hit.pageAge})`);
    return lines.join("\n");
  }).join("\n\n");
}

/** The text the model reads for a failed server tool call (the same when the caller sends the block back). */
export function serverToolErrorText(tool: string, errorCode: string): string {
  const reasons: Record<string, string> = {
    max_uses_exceeded: `${tool} was used as many times as this request allows (max_uses)`,
    url_not_allowed: "this URL's domain is not allowed for this request",
    url_not_accessible: "the page could not be fetched",
    invalid_tool_input: "the arguments were not valid",
    too_many_requests: "the search service's rate limit was reached",
    query_too_long: "the query is too long",
  };
  return `${tool} failed (${errorCode}): ${reasons[errorCode] ?? "the tool is unavailable right now"}`;
}

/** The hostname of a URL, lower case without a trailing dot; undefined for text that is not a URL. */
export function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

/**
 * Anthropic's domain rule: `example.com` covers the domain and its subdomains; a rule with a path
 * (`example.com/docs`) covers URLs under that path. A scheme in the rule is ignored.
 */
export function matchesDomain(url: string, rule: string): boolean {
  const host = hostOf(url);
  if (!host) return false;
  const cleaned = rule.trim().toLowerCase().replace(/^[a-z]+:\/\//, "");
  const slash = cleaned.indexOf("/");
  const domain = (slash < 0 ? cleaned : cleaned.slice(0, slash)).replace(/^\*\./, "").replace(/\.$/, "");
  const path = slash < 0 ? "" : cleaned.slice(slash);
  if (host !== domain && !host.endsWith(`.${domain}`)) return false;
  return path === "" || new URL(url).pathname.toLowerCase().startsWith(path);
}

/** Whether the declared tool's domain lists let this URL through. */
export function domainAllowed(url: string, allowed: string[] | undefined, blocked: string[] | undefined): boolean {
  if (allowed && allowed.length > 0 && !allowed.some((rule) => matchesDomain(url, rule))) return false;
  return !(blocked ?? []).some((rule) => matchesDomain(url, rule));
}

const TOKEN_PREFIX = "auxot1.";

/**
 * `encrypted_content` for a hit: Auxot's own opaque token, the hit's text base64url-encoded (not encrypted: it
 * is the caller's own search result, and a caller must only hand it back unchanged). It lets a conversation sent
 * back later give the model exactly the text it read.
 */
export function encodeHit(hit: WebSearchHit): string {
  const bytes = new TextEncoder().encode(JSON.stringify([hit.title, hit.url, hit.snippet, hit.pageAge ?? ""]));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return TOKEN_PREFIX + btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The hit inside an `encrypted_content` token, or undefined for a token that is not Auxot's. */
export function decodeHit(token: string): WebSearchHit | undefined {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  try {
    const base64 = token.slice(TOKEN_PREFIX.length).replaceAll("-", "+").replaceAll("_", "/");
    const binary = atob(base64);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const [title, url, snippet, pageAge] = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof title !== "string" || typeof url !== "string" || typeof snippet !== "string") return undefined;
    return { title, url, snippet, ...(typeof pageAge === "string" && pageAge ? { pageAge } : {}) };
  } catch {
    return undefined;
  }
}
