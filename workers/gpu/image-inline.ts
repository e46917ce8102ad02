/**
 * External engine mode: a caller's `image_url` must not make the engine (vLLM, llama-server...) fetch an address on
 * the GPU host's network — cloud metadata, a LAN admin page — on the caller's behalf. So the worker fetches every
 * http(s) image itself through web_fetch's guard (workers/tools/net-guard.ts: each hop resolved and checked, the
 * connection pinned to the checked address, redirects followed by hand), with a size and time limit, and hands the
 * engine a data: URL. The engine never sees a URL it could fetch.
 */
import type { ChatRequest, ContentPart } from "../../src/protocol/chat.ts";
import { AllowList, checkDestination, type Resolver, systemResolver } from "../tools/net-guard.ts";

export interface ImageFetchOptions {
  /** Non-public destinations permitted anyway (AUXOT_IMAGE_FETCH_ALLOW, same syntax as web_fetch's allow-list). */
  allow?: AllowList;
  resolve?: Resolver;
  maxBytes?: number;
  timeoutMs?: number;
  maxRedirects?: number;
}

export class ImageFetchError extends Error {}

/** The request with every http(s) image replaced by a data: URL of its bytes; other images left as they are. */
export async function inlineImages(
  request: ChatRequest,
  options: ImageFetchOptions,
  signal: AbortSignal,
): Promise<ChatRequest> {
  const cache = new Map<string, Promise<string>>();
  const inline = async (part: ContentPart): Promise<ContentPart> => {
    if (part.type !== "image" || part.url.startsWith("data:")) return part;
    let pending = cache.get(part.url);
    if (!pending) cache.set(part.url, pending = fetchAsDataUrl(part.url, options, signal));
    return { ...part, url: await pending };
  };
  const messages = await Promise.all(request.messages.map(async (message) => {
    if (!("content" in message) || !Array.isArray(message.content)) return message;
    return { ...message, content: await Promise.all(message.content.map(inline)) };
  }));
  return { ...request, messages } as ChatRequest;
}

async function fetchAsDataUrl(raw: string, options: ImageFetchOptions, outer: AbortSignal): Promise<string> {
  const allow = options.allow ?? new AllowList();
  const resolve = options.resolve ?? systemResolver;
  const maxBytes = options.maxBytes ?? 20 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const signal = AbortSignal.any([outer, AbortSignal.timeout(timeoutMs)]);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ImageFetchError(`image URL ${JSON.stringify(raw.slice(0, 100))} is not an absolute URL`);
  }
  for (let hop = 0;; hop++) {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ImageFetchError(`images are fetched from http(s) or given as data: URLs, not ${url.protocol}`);
    }
    if (url.username || url.password) throw new ImageFetchError("image URLs with credentials in them are not fetched");
    let destination;
    try {
      destination = await checkDestination(url, allow, resolve);
    } catch (err) {
      throw new ImageFetchError(`image ${url.host}: ${(err as Error).message}`);
    }
    const client = Deno.createHttpClient({
      proxy: { transport: "tcp", hostname: destination.address, port: destination.port },
    });
    try {
      const response = await fetch(url, { client, redirect: "manual", signal, headers: { accept: "image/*" } })
        .catch((err) => {
          throw new ImageFetchError(`fetching image ${url.href} failed: ${signal.aborted ? "timed out" : err.message}`);
        });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel();
        if (hop >= (options.maxRedirects ?? 5)) throw new ImageFetchError(`too many redirects from ${raw}`);
        url = new URL(location, url);
        continue;
      }
      const type = (response.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
      if (!response.ok || !type.startsWith("image/")) {
        await response.body?.cancel();
        throw new ImageFetchError(`image ${url.href} answered ${response.status} ${type || "(no content type)"}`);
      }
      const bytes = await readAtMost(response, maxBytes, url);
      return `data:${type};base64,${toBase64(bytes)}`;
    } finally {
      client.close();
    }
  }
}

async function readAtMost(response: Response, maxBytes: number, url: URL): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new ImageFetchError(`image ${url.href} is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) (bytes.set(c, offset), offset += c.byteLength);
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
