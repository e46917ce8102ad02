/**
 * Where a GGUF header's bytes come from (gguf-header.ts): a local file, or an http(s) URL read in growing byte
 * ranges (`Range: bytes=a-b`) so that sizing up a 20 GB model on the hub transfers only its first few MB.
 */
import { open } from "node:fs/promises";
import type { ReadGgufHeaderOptions } from "./gguf-header.ts";

export class GgufHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GgufHeaderError";
  }
}

/** A byte source read from the start: `readPrefix(n)` returns at least min(n, size) bytes. */
export interface PrefixReader {
  readPrefix(length: number): Promise<Uint8Array>;
  /** Total size when known. */
  size(): number | undefined;
  close(): Promise<void>;
}

export class FileRangeReader implements PrefixReader {
  private constructor(
    private readonly handle: Awaited<ReturnType<typeof open>>,
    private readonly fileSize: number,
  ) {}

  static async open(path: string): Promise<FileRangeReader> {
    const handle = await open(path, "r");
    const stat = await handle.stat();
    return new FileRangeReader(handle, stat.size);
  }

  async readPrefix(length: number): Promise<Uint8Array> {
    const wanted = Math.min(length, this.fileSize);
    const buffer = new Uint8Array(wanted);
    let filled = 0;
    while (filled < wanted) {
      const { bytesRead } = await this.handle.read(buffer, filled, wanted - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  }

  size(): number {
    return this.fileSize;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Fetches `bytes=have-(want-1)` and appends, so every byte is transferred once. */
export class HttpRangeReader implements PrefixReader {
  private buffer = new Uint8Array(0);
  private totalSize: number | undefined;
  private ended = false;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly url: string, private readonly options: ReadGgufHeaderOptions) {
    this.fetchImpl = options.fetch ?? fetch;
  }

  async readPrefix(length: number): Promise<Uint8Array> {
    if (length <= this.buffer.length || this.ended) {
      return this.buffer.subarray(0, Math.min(length, this.buffer.length));
    }
    const start = this.buffer.length;
    const response = await this.fetchImpl(this.url, {
      headers: { ...this.options.headers, range: `bytes=${start}-${length - 1}`, "accept-encoding": "identity" },
      signal: this.options.signal,
    });
    if (response.status === 416) {
      await response.body?.cancel();
      this.ended = true;
      return this.buffer;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new GgufHeaderError(`${this.url}: HTTP ${response.status} while reading the GGUF header`);
    }
    let chunk: Uint8Array;
    if (response.status === 206) {
      const range = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(response.headers.get("content-range") ?? "");
      if (!range || Number(range[1]) !== start) {
        await response.body?.cancel();
        throw new GgufHeaderError(`${this.url}: unexpected Content-Range "${response.headers.get("content-range")}"`);
      }
      if (range[3] !== "*") this.totalSize = Number(range[3]);
      chunk = new Uint8Array(await response.arrayBuffer());
    } else {
      // The server ignored Range and is sending the whole file: take the prefix we need and hang up.
      const contentLength = Number(response.headers.get("content-length") ?? NaN);
      if (Number.isFinite(contentLength)) this.totalSize = contentLength;
      chunk = (await readStreamPrefix(response.body, length)).subarray(start);
    }
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    if (chunk.length < length - start) this.ended = true;
    return this.buffer;
  }

  size(): number | undefined {
    return this.totalSize;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function readStreamPrefix(body: ReadableStream<Uint8Array> | null, length: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < length) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      total += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(Math.min(total, length));
  let at = 0;
  for (const part of parts) {
    const take = Math.min(part.length, out.length - at);
    out.set(part.subarray(0, take), at);
    at += take;
    if (at >= out.length) break;
  }
  return out;
}
