/**
 * The bytes of one relayed batch of SSE events, written in place. The string way (an encoder's text per event,
 * joined, then TextEncoder) allocated a token's bytes about three times over — its chunk's pieces, the joined and
 * flattened batch, the encoded copy; here a token's chunk is copied from pre-encoded pieces and its text is written
 * byte by byte, so a batch allocates the bytes it sends (once, in `take`) and little else.
 *
 * `text` takes any string (UTF-8, exactly as TextEncoder writes it), so encoders without a byte path still fit; an
 * encoder's byte path must produce what its string path would, encoded (tests/api/sse-bytes.test.ts holds them).
 */
const utf8 = new TextEncoder();
const INITIAL_BYTES = 16 * 1024;
const MAX_KEPT_BYTES = 256 * 1024;

export class SseBytes {
  #buffer = new Uint8Array(INITIAL_BYTES);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** Bytes encoded once by the caller (a chunk's shared prefix and suffix). */
  bytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Any text, as UTF-8. */
  text(text: string): void {
    if (text === "") return;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.#reserve(text.length * 3);
    this.#length += utf8.encodeInto(text, this.#buffer.subarray(this.#length)).written;
  }

  /** JSON.stringify(text), as UTF-8: printable ASCII is written as it is; any other text goes through JSON.stringify. */
  jsonString(text: string): void {
    this.#reserve(text.length + 2);
    const buffer = this.#buffer;
    const start = this.#length;
    let at = start;
    buffer[at++] = QUOTE;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      // What JSON.stringify writes unchanged and UTF-8 writes as one byte: " " to "~" but for `"` and `\`.
      if (code < 0x20 || code > 0x7e || code === QUOTE || code === BACKSLASH) {
        this.#length = start;
        this.text(JSON.stringify(text));
        return;
      }
      buffer[at++] = code;
    }
    buffer[at++] = QUOTE;
    this.#length = at;
  }

  /** The batch's bytes (a copy the stream may keep), and an empty writer for the next batch. */
  take(): Uint8Array {
    const out = this.#buffer.slice(0, this.#length);
    this.#length = 0;
    // A rare huge batch does not leave its buffer held for good (the router's writer lives as long as the process).
    if (this.#buffer.length > MAX_KEPT_BYTES) this.#buffer = new Uint8Array(INITIAL_BYTES);
    return out;
  }

  /** Drops what was written since the last `take`. */
  clear(): void {
    this.#length = 0;
  }

  #reserve(more: number): void {
    const needed = this.#length + more;
    if (needed <= this.#buffer.length) return;
    const grown = new Uint8Array(Math.max(needed, this.#buffer.length * 2));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Text that is sent as it is (constant pieces of a chunk), encoded once. */
export function encodeOnce(text: string): Uint8Array {
  return utf8.encode(text);
}
