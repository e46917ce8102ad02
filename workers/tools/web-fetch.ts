/**
 * The `web_fetch` tool: fetches a page and returns it as readable Markdown (HTML) or text (plain, JSON, XML),
 * within a time limit and a download size limit, in slices the model can page through (`start_index`).
 * Every hop — the first URL and each redirect, followed by hand — is resolved and checked by net-guard.ts, and
 * the connection goes to the checked address itself (a pinned TCP transport; the URL's host still names the
 * site for HTTP and TLS), so neither a redirect nor a second DNS answer can reach a private address.
 */
import { z } from "zod";
import { htmlToMarkdown } from "./html-to-markdown.ts";
import { AllowList, checkDestination, type Resolver, systemResolver } from "./net-guard.ts";
import { defineTool, errorMessage, type ServerTool, ToolError } from "./tool.ts";

export interface WebFetchOptions {
  allow?: AllowList;
  resolve?: Resolver;
  /** The whole fetch, redirects included. */
  timeoutMs?: number;
  /** Bytes downloaded at most; the rest of a larger page is not read. */
  maxBytes?: number;
  maxRedirects?: number;
}

const MAX_LENGTH = 100_000;

const spec = defineTool(
  "web_fetch",
  "Fetch a web page (http or https) and return its content as Markdown (HTML pages) or text. Long pages come " +
    "in slices: when the result says it was truncated, call again with the start_index it gives.",
  z.object({
    url: z.string().describe("The absolute http(s) URL to fetch."),
    max_length: z.number().int().min(1).max(MAX_LENGTH).default(20_000).describe(
      "Characters of content to return at most.",
    ),
    start_index: z.number().int().min(0).default(0).describe("Character offset to start from (for paging)."),
    raw: z.boolean().default(false).describe("Return the page source as is instead of converting HTML."),
  }).strict(),
);

export function webFetchTool(options: WebFetchOptions = {}): ServerTool {
  const allow = options.allow ?? new AllowList();
  const resolve = options.resolve ?? systemResolver;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const maxBytes = options.maxBytes ?? 5 * 1024 * 1024;
  const maxRedirects = options.maxRedirects ?? 5;
  return {
    definition: spec.definition,
    async run(rawArgs, ctx) {
      const args = spec.parse(rawArgs);
      let url: URL;
      try {
        url = new URL(args.url);
      } catch {
        throw new ToolError(`"${args.url}" is not an absolute URL`);
      }
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
      for (let hop = 0;; hop++) {
        if (url.protocol !== "http:" && url.protocol !== "https:") {
          throw new ToolError(`only http and https URLs are fetched, not ${url.protocol}`);
        }
        if (url.username || url.password) throw new ToolError("URLs with credentials in them are not fetched");
        let destination;
        try {
          destination = await checkDestination(url, allow, resolve);
        } catch (err) {
          throw new ToolError(errorMessage(err));
        }
        const client = Deno.createHttpClient({
          proxy: { transport: "tcp", hostname: destination.address, port: destination.port },
        });
        try {
          let response: Response;
          try {
            response = await fetch(url, {
              client,
              redirect: "manual",
              signal,
              headers: {
                "user-agent": "AuxotToolsWorker/1.0 (web_fetch)",
                accept: "text/html,application/xhtml+xml,text/plain,application/json;q=0.9,*/*;q=0.5",
              },
            });
          } catch (err) {
            if (ctx.signal.aborted) throw err;
            if (signal.aborted) throw new ToolError(`fetching ${url.href} took longer than ${timeoutMs / 1000} s`);
            throw new ToolError(`fetching ${url.href} failed: ${errorMessage(err)}`);
          }
          const location = response.headers.get("location");
          if (response.status >= 300 && response.status < 400 && location) {
            await response.body?.cancel();
            if (hop >= maxRedirects) throw new ToolError(`more than ${maxRedirects} redirects from ${args.url}`);
            url = new URL(location, url);
            continue;
          }
          const body = await readCapped(response, maxBytes, signal, url, timeoutMs);
          return render(url, response, body, args);
        } finally {
          client.close();
        }
      }
    },
  };
}

async function readCapped(
  response: Response,
  maxBytes: number,
  signal: AbortSignal,
  url: URL,
  timeoutMs: number,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const reader = response.body?.getReader();
  if (!reader) return { bytes: new Uint8Array(), truncated: false };
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = maxBytes - size;
      chunks.push(value.byteLength > room ? value.subarray(0, room) : value);
      size += Math.min(room, value.byteLength);
      if (value.byteLength >= room) {
        truncated = true;
        break;
      }
    }
  } catch (err) {
    if (signal.aborted) throw new ToolError(`reading ${url.href} took longer than ${timeoutMs / 1000} s`);
    throw new ToolError(`reading ${url.href} failed: ${errorMessage(err)}`);
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) (bytes.set(c, offset), offset += c.byteLength);
  return { bytes, truncated };
}

function render(
  url: URL,
  response: Response,
  body: { bytes: Uint8Array; truncated: boolean },
  args: { max_length: number; start_index: number; raw: boolean },
): string {
  const type = (response.headers.get("content-type") ?? "").toLowerCase();
  const charset = /charset="?([\w-]+)/.exec(type)?.[1] ?? "utf-8";
  let text: string;
  try {
    text = new TextDecoder(charset).decode(body.bytes);
  } catch {
    text = new TextDecoder().decode(body.bytes);
  }
  const isHtml = type.includes("html") || (!type && /^\s*</.test(text));
  const isText = isHtml || !type || type.startsWith("text/") || /json|xml|javascript|yaml|csv/.test(type);
  if (!isText) throw new ToolError(`${url.href} is ${type.split(";")[0]}, not a text or HTML page`);
  if (response.status >= 400) {
    const snippet = (isHtml ? htmlToMarkdown(text, url.href).markdown : text).slice(0, 500);
    throw new ToolError(`${url.href} answered HTTP ${response.status} ${response.statusText}: ${snippet}`);
  }
  let title: string | undefined;
  if (isHtml && !args.raw) ({ title, markdown: text } = htmlToMarkdown(text, url.href));
  const slice = text.slice(args.start_index, args.start_index + args.max_length);
  const lines = [`URL: ${url.href}`];
  if (title) lines.push(`Title: ${title}`);
  lines.push("", slice || (args.start_index > 0 ? "(no more content)" : "(empty page)"));
  const end = args.start_index + slice.length;
  if (end < text.length) {
    lines.push("", `[truncated: ${text.length - end} more characters; call again with start_index=${end}]`);
  } else if (body.truncated) {
    lines.push(
      "",
      `[the page is larger than the download limit; only its first ${body.bytes.byteLength} bytes were read]`,
    );
  }
  return lines.join("\n");
}
