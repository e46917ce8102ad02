/**
 * Streaming parsers for a model's raw output text (pure: no I/O, no clock), used by the llama engine.
 *
 * - `StopSequenceMatcher` finds the caller's stop sequences across token boundaries, holding back text that may be
 *   the start of one so a stop sequence is never emitted.
 * - `ModelOutputParser` splits the text into answer text, `<think>…</think>` reasoning, and Qwen/Hermes-style
 *   `<tool_call>{"name": …, "arguments": …}</tool_call>` calls. A call is announced (`tool_call`) as soon as its
 *   name is complete and its arguments are streamed (`tool_args`) as they are generated; a call in another key
 *   order is parsed whole when it closes. Text that may be the start of a tag is held back until it is decided.
 */
import type { JobEvent } from "../../src/protocol/events.ts";

export type OutputEvent = Extract<JobEvent, { type: "text" | "reasoning" | "tool_call" | "tool_args" }>;

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";
const CALL_OPEN = "<tool_call>";
const CALL_CLOSE = "</tool_call>";

/** Length of the longest suffix of `text` that is a proper prefix of one of `needles` (text to hold back). */
export function partialSuffixLength(text: string, needles: readonly string[]): number {
  let longest = 0;
  for (const needle of needles) {
    for (let length = Math.min(needle.length - 1, text.length); length > longest; length--) {
      if (text.endsWith(needle.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

/** Earliest occurrence of any needle (the longest one on a tie). */
function findFirst(text: string, needles: readonly string[]): { index: number; needle: string } | undefined {
  let best: { index: number; needle: string } | undefined;
  for (const needle of needles) {
    const index = text.indexOf(needle);
    if (index < 0) continue;
    if (!best || index < best.index || (index === best.index && needle.length > best.needle.length)) {
      best = { index, needle };
    }
  }
  return best;
}

export class StopSequenceMatcher {
  private readonly stops: string[];
  private pending = "";

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((stop) => stop.length > 0);
  }

  /** Returns the text that is safe to pass on; `stop` is set when a stop sequence was found (generation ends). */
  push(text: string): { text: string; stop?: string } {
    if (this.stops.length === 0) return { text };
    this.pending += text;
    const found = findFirst(this.pending, this.stops);
    if (found) {
      const before = this.pending.slice(0, found.index);
      this.pending = "";
      return { text: before, stop: found.needle };
    }
    const keep = partialSuffixLength(this.pending, this.stops);
    const safe = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { text: safe };
  }

  /** The held-back text at the end of generation (it turned out not to be a stop sequence). */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest;
  }
}

function unescapeJsonString(escaped: string): string {
  try {
    return JSON.parse(`"${escaped}"`);
  } catch {
    return escaped;
  }
}

/** Streams one tool call's body: the text between `<tool_call>` and `</tool_call>`. */
class ToolCallBody {
  private static readonly HEAD = /^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"\s*:/;
  private body = "";
  private announced = false;
  private argsFrom = -1;
  private argsStarted = false;
  private argsDone = false;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly index: number, private readonly id: string) {}

  push(text: string): OutputEvent[] {
    this.body += text;
    const events: OutputEvent[] = [];
    if (!this.announced) {
      const head = ToolCallBody.HEAD.exec(this.body);
      if (!head) return events;
      this.announced = true;
      this.argsFrom = head[0].length;
      events.push({ type: "tool_call", index: this.index, id: this.id, name: unescapeJsonString(head[1]) });
    }
    const delta = this.scanArguments();
    if (delta) events.push({ type: "tool_args", index: this.index, delta });
    return events;
  }

  /** Advances over the arguments value, tracking JSON nesting so text after the value (`}`) is not emitted. */
  private scanArguments(): string {
    let delta = "";
    while (this.argsFrom < this.body.length && !this.argsDone) {
      const char = this.body[this.argsFrom++];
      if (!this.argsStarted && /\s/.test(char)) continue;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (char === "\\") this.escaped = true;
        else if (char === '"') {
          this.inString = false;
          if (this.depth === 0) this.argsDone = true;
        }
      } else if (char === '"') this.inString = true;
      else if (char === "{" || char === "[") this.depth++;
      else if (char === "}" || char === "]") {
        if (this.depth === 0) { // a bare scalar ended at the call object's closing brace
          this.argsDone = true;
          break;
        }
        if (--this.depth === 0) this.argsDone = true;
      } else if (char === "," && this.depth === 0) {
        this.argsDone = true;
        break;
      }
      this.argsStarted = true;
      delta += char;
    }
    return delta;
  }

  /** The call closed (or generation ended): announce it if it was not yet, or give it up as plain text. */
  finish(): { events: OutputEvent[]; ok: boolean; raw: string } {
    if (this.announced) {
      return {
        events: this.argsStarted ? [] : [{ type: "tool_args", index: this.index, delta: "{}" }],
        ok: true,
        raw: this.body,
      };
    }
    try {
      const call: unknown = JSON.parse(this.body);
      if (typeof call === "object" && call !== null && "name" in call && typeof call.name === "string") {
        const args = "arguments" in call ? call.arguments : "parameters" in call ? call.parameters : {};
        return {
          ok: true,
          raw: this.body,
          events: [
            { type: "tool_call", index: this.index, id: this.id, name: call.name },
            {
              type: "tool_args",
              index: this.index,
              delta: typeof args === "string" ? args : JSON.stringify(args ?? {}),
            },
          ],
        };
      }
    } catch {
      // not JSON: handed back as text below
    }
    return { events: [], ok: false, raw: this.body };
  }
}

export interface ModelOutputParserOptions {
  /** The prompt ended inside an open `<think>` block, so output starts as reasoning. */
  startInReasoning?: boolean;
  /** Recognise `<tool_call>` blocks (false when the request offered no tools). */
  parseToolCalls?: boolean;
  /** Ids for tool calls, e.g. `call_<random>`. */
  newToolCallId: () => string;
}

export class ModelOutputParser {
  private mode: "text" | "reasoning" | "tool_call";
  private pending = "";
  /** Whitespace right after a tag (`</think>\n\n`) is layout, not content. */
  private skipLeadingWhitespace: boolean;
  private call: ToolCallBody | undefined;
  private calls = 0;
  private readonly options: ModelOutputParserOptions;

  constructor(options: ModelOutputParserOptions) {
    this.options = options;
    this.mode = options.startInReasoning ? "reasoning" : "text";
    this.skipLeadingWhitespace = this.mode === "reasoning";
  }

  /** Tool calls seen so far in this answer. */
  get toolCallCount(): number {
    return this.calls;
  }

  push(text: string): OutputEvent[] {
    this.pending += text;
    const events: OutputEvent[] = [];
    while (this.pending.length > 0) {
      const tags = this.tagsFor(this.mode);
      const found = findFirst(this.pending, tags);
      if (!found) {
        const keep = this.mode === "tool_call" ? partialSuffixLength(this.pending, tags) : this.holdBack(tags);
        this.emitContent(this.pending.slice(0, this.pending.length - keep), events);
        this.pending = this.pending.slice(this.pending.length - keep);
        break;
      }
      // Whitespace that only separates content from a tag is layout: dropped.
      const before = this.pending.slice(0, found.index);
      this.emitContent(this.mode === "tool_call" ? before : before.trimEnd(), events);
      this.pending = this.pending.slice(found.index + found.needle.length);
      this.enterAfterTag(found.needle, events);
    }
    return events;
  }

  /** Generation ended: flush held-back text and close an unterminated tool call or reasoning block. */
  end(): OutputEvent[] {
    const events: OutputEvent[] = [];
    const rest = this.pending;
    this.pending = "";
    if (this.mode === "tool_call") {
      this.emitContent(rest, events);
      this.closeCall(events);
    } else {
      this.emitContent(this.mode === "reasoning" ? rest.trimEnd() : rest, events);
    }
    this.mode = "text";
    return events;
  }

  private tagsFor(mode: ModelOutputParser["mode"]): string[] {
    if (mode === "reasoning") return [THINK_CLOSE];
    if (mode === "tool_call") return [CALL_CLOSE];
    return this.options.parseToolCalls ? [THINK_OPEN, CALL_OPEN] : [THINK_OPEN];
  }

  /** Text/reasoning hold back a possible tag start and trailing whitespace (dropped if a tag follows). */
  private holdBack(tags: readonly string[]): number {
    const partial = partialSuffixLength(this.pending, tags);
    const content = this.pending.slice(0, this.pending.length - partial);
    return this.pending.length - content.trimEnd().length;
  }

  private emitContent(text: string, events: OutputEvent[]): void {
    if (this.skipLeadingWhitespace && this.mode !== "tool_call") {
      text = text.trimStart();
      if (text.length === 0) return;
      this.skipLeadingWhitespace = false;
    }
    if (text.length === 0) return;
    if (this.mode === "tool_call") {
      if (this.call) events.push(...this.call.push(text));
    } else events.push({ type: this.mode === "reasoning" ? "reasoning" : "text", text });
  }

  private enterAfterTag(tag: string, events: OutputEvent[]): void {
    if (tag === THINK_OPEN) this.mode = "reasoning";
    else if (tag === CALL_OPEN) {
      this.mode = "tool_call";
      this.call = new ToolCallBody(this.calls, this.options.newToolCallId());
    } else if (tag === CALL_CLOSE) {
      this.closeCall(events);
      this.mode = "text";
    } else this.mode = "text";
    this.skipLeadingWhitespace = true;
  }

  private closeCall(events: OutputEvent[]): void {
    if (!this.call) return;
    const result = this.call.finish();
    this.call = undefined;
    if (result.ok) {
      this.calls++;
      events.push(...result.events);
    } else {
      // Not a parsable call: keep what the model wrote, as text.
      events.push({ type: "text", text: CALL_OPEN + result.raw + CALL_CLOSE });
    }
  }
}
