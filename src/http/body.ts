/**
 * Reading a JSON request body with limits: a size bound (413) enforced while reading, not after, and a nesting
 * bound (400) checked before parsing so hostile, deeply nested input cannot exhaust the stack later.
 */
import { ApiError } from "./errors.ts";

export const MAX_JSON_DEPTH = 64;
/** A body still arriving after this is refused (408): a slow-loris caller cannot hold a request open forever. */
export const BODY_DEADLINE_MS = 30_000;

/**
 * Deadlines of body reads in progress, when one process serves every request (Deno): one sweep every
 * `SWEEP_MS` for all of them instead of a timer per body (a Node-style Timeout on Deno: ~3 KB and a few µs each, two
 * per job). Off by default and never on Workers: there a request owns its waits, and a timer of one request must not
 * cancel another's read. The entry turns it on (`shareBodyDeadlines`); a deadline then passes up to SWEEP_MS late.
 */
let shared:
  | { reads: Set<{ deadline: number; expire: () => void }>; sweep?: ReturnType<typeof setInterval> }
  | undefined;
const SWEEP_MS = 500;

/** One sweeping timer for all body deadlines of this process (Deno's entry), or a timer per body (`false`). */
export function shareBodyDeadlines(enabled = true): void {
  if (shared?.sweep !== undefined) clearInterval(shared.sweep);
  shared = enabled ? { reads: new Set() } : undefined;
}

/** Calls `expire` once `ms` have passed, unless the returned function is called first. */
function deadline(ms: number, expire: () => void): () => void {
  if (!shared) {
    const timer = setTimeout(expire, ms);
    return () => clearTimeout(timer);
  }
  const state = shared;
  const read = { deadline: performance.now() + ms, expire };
  state.reads.add(read);
  if (state.sweep === undefined) {
    state.sweep = setInterval(() => {
      const now = performance.now();
      for (const r of state.reads) {
        if (r.deadline > now) continue;
        state.reads.delete(r);
        r.expire();
      }
      if (state.reads.size === 0) {
        clearInterval(state.sweep);
        state.sweep = undefined;
      }
    }, SWEEP_MS);
  }
  return () => state.reads.delete(read);
}

/** One decoder for every body: `decode` without `stream` keeps no state between calls. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

export async function readJsonBody(
  request: Request,
  maxBytes: number,
  deadlineMs = BODY_DEADLINE_MS,
): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) throw new ApiError("invalid_request", "A JSON request body is required.");
  const bytes = declared > 0
    ? await readDeclared(request, maxBytes, deadlineMs)
    : await readChunked(request.body, maxBytes, deadlineMs);
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ApiError("invalid_request", "The request body is not valid UTF-8.");
  }
  if (text.trim() === "") throw new ApiError("invalid_request", "A JSON request body is required.");
  if (bracketsExceed(text, MAX_JSON_DEPTH) && jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new ApiError("invalid_request", `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError("invalid_request", `The request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A body of declared length (within the limit, checked by the caller), read whole by the runtime: HTTP framing
 * bounds it. One native read instead of a read per chunk: under workerd reading a small body through a stream
 * reader cost about twice what `arrayBuffer()` does, three times per answered request (the call, the worker's
 * poll, its post). One race against the deadline per body; a stalled body is left to the connection's end.
 */
async function readDeclared(request: Request, maxBytes: number, deadlineMs: number): Promise<Uint8Array> {
  let settle = () => {};
  const expired = new Promise<never>((_, reject) => {
    settle = deadline(deadlineMs, () => reject(timedOut()));
  });
  try {
    const bytes = new Uint8Array(await Promise.race([request.arrayBuffer(), expired]));
    // A Request built in-process may declare less than it holds.
    if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
    return bytes;
  } finally {
    settle();
  }
}

/** A body of undeclared length (chunked), read chunk by chunk so that the size limit holds while it arrives. */
async function readChunked(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  deadlineMs: number,
): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  // No Promise.race against the deadline: each race would leave a reaction on one long-lived promise holding its
  // read's result (a view pinning a 64 KiB buffer) until the deadline. The timer flags and cancels instead; the
  // pending read then ends as "done" and the flag tells it apart from a complete body.
  let expired = false;
  const settle = deadline(deadlineMs, () => {
    expired = true;
    void reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (expired) throw timedOut();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      // A body usually arrives in one read: keep that view as it is (it is decoded at once). Once more arrive,
      // copies: a read may be a view that pins a 64 KiB buffer for a few bytes while the rest is awaited.
      if (chunks.length === 1) chunks[0] = chunks[0].slice();
      chunks.push(chunks.length === 0 ? value : value.slice());
    }
  } finally {
    settle();
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function timedOut(): ApiError {
  return new ApiError("invalid_request", "The request body did not arrive in time.", { status: 408 });
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError("payload_too_large", `The request body exceeds ${maxBytes} bytes (AUXOT_MAX_BODY_BYTES).`);
}

/**
 * Whether `text` has more than `limit` opening brackets, strings included: if not, it cannot nest deeper than that,
 * and the exact scan below (a loop over every character) is skipped. `indexOf` runs at memchr speed.
 */
function bracketsExceed(text: string, limit: number): boolean {
  let count = 0;
  for (const bracket of ["{", "["]) {
    for (let i = text.indexOf(bracket); i !== -1; i = text.indexOf(bracket, i + 1)) if (++count > limit) return true;
  }
  return false;
}

/** Deepest bracket nesting outside strings (a linear scan; invalid JSON is left to JSON.parse). */
function jsonDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) max = Math.max(max, ++depth);
    else if (c === 125 || c === 93) depth--;
  }
  return max;
}
