/**
 * The `data:` payloads of a server-sent-events byte stream (an OpenAI-compatible engine's answer), found in place:
 * each chunk is decoded once and scanned for line ends, and only a data line's payload becomes a string of its own.
 * The older form (an async generator that sliced the remaining buffer and ran a regex per line) cost the worker one
 * promise, three strings and a regex match per token; this is per chunk, which a fast engine fills with many tokens.
 *
 * Rules (those of the generator it replaces, kept exactly): lines end at "\n", one trailing "\r" is dropped; a line
 * that starts with "data:" yields the rest with its leading whitespace trimmed (String.prototype.trimStart); other
 * lines are ignored; an unterminated last line is dropped.
 */
export class SseDataLines {
  readonly #decoder = new TextDecoder();
  #rest = "";

  /** The data payloads completed by this chunk, in order. */
  push(chunk: Uint8Array): string[] {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    const found: string[] = [];
    let start = 0;
    let end: number;
    while ((end = text.indexOf("\n", start)) >= 0) {
      if (text.startsWith("data:", start)) {
        const lineEnd = end > start && text.charCodeAt(end - 1) === CR ? end - 1 : end;
        found.push(payload(text, start + 5, lineEnd));
      }
      start = end + 1;
    }
    this.#rest = start === 0 ? text : text.slice(start);
    return found;
  }
}

const CR = 13;
const SPACE = 32;

/** text.slice(from, to).trimStart(), without the intermediate string when the payload starts with spaces then ASCII. */
function payload(text: string, from: number, to: number): string {
  let at = from;
  while (at < to && text.charCodeAt(at) === SPACE) at++;
  if (at === to) return "";
  const code = text.charCodeAt(at);
  // A printable ASCII character is not whitespace: the trimmed payload starts here. Anything else (a tab, a
  // non-ASCII space) goes the general way.
  if (code > SPACE && code < 127) return text.slice(at, to);
  return text.slice(from, to).trimStart();
}
