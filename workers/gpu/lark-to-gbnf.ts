/**
 * Custom-tool grammars (OpenAI Responses `custom` tools: Lark or a regular expression) as llama.cpp GBNF, so that a
 * call of such a tool is generated inside the tool's language (freeform-grammar.ts builds the call around it).
 * Pure: the engine compiles the text.
 *
 * The model writes the call as JSON (`{"name": "apply_patch", "arguments": {"input": "..."}}`, the Hermes/Qwen
 * syntax the output parser reads), so the grammar admits the tool's language *as the content of a JSON string*:
 * every literal is JSON-escaped, and every character class admits its plain members plus the JSON escapes of its
 * members that must be escaped (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`; other control characters are left out).
 *
 * Lark's regex terminals match greedily while GBNF is non-deterministic, so the GBNF language can be a little
 * larger than Lark's for odd grammars; the router checks every input with the Lark recognizer anyway
 * (src/api/responses/custom-tools.ts). What cannot be translated (lookarounds, backreferences, `\b`, the `i`
 * flag on a regex) throws, and the engine then generates that input unconstrained.
 */
import { type LarkNode, parseLark } from "../../src/protocol/lark-grammar.ts";

export class GbnfTranslationError extends Error {}

type Range = [number, number];
interface CharClass {
  negated: boolean;
  ranges: Range[];
}

const MAX_CP = 0x10ffff;
/** Characters JSON cannot hold raw in a string, with the escape this grammar admits for them. */
const JSON_ESCAPES: Record<number, string> = {
  0x22: '\\"',
  0x5c: "\\\\",
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x08: "\\b",
  0x0c: "\\f",
};
const MUST_ESCAPE: Range[] = [[0x00, 0x1f], [0x22, 0x22], [0x5c, 0x5c]];

/** The rules of a Lark grammar, its start rule named `l-start`, over JSON-escaped text. */
export function larkToGbnf(source: string): string {
  const grammar = parseLark(source);
  return [...grammar.rules].map(([name, node]) => `${ruleName(name)} ::= ${nodeToGbnf(node)}`).join("\n") + "\n";
}

/** The rules of a regex-syntax tool grammar, its start rule named `l-start`. */
export function regexRules(source: string): string {
  return `l-start ::= ${regexToGbnf(source, "")}\n`;
}

function ruleName(name: string): string {
  return `l-${name.replaceAll("_", "-")}`;
}

function nodeToGbnf(node: LarkNode): string {
  switch (node.t) {
    case "lit":
      if (!node.ci) return jsonLiteral(node.text);
      return node.text.length === 0 ? '""' : [...node.text].map((c) => {
        const lower = c.toLowerCase();
        const upper = c.toUpperCase();
        return lower === upper ? jsonLiteral(c) : classToGbnf({ negated: false, ranges: cpRanges(lower, upper) });
      }).join(" ");
    case "range":
      return classToGbnf({ negated: false, ranges: [[node.from.codePointAt(0)!, node.to.codePointAt(0)!]] });
    case "re":
      return regexToGbnf(node.source, node.flags);
    case "ref":
      return ruleName(node.name);
    case "seq":
      return node.items.length === 0 ? '""' : node.items.map(nodeToGbnf).join(" ");
    case "alt":
      return `(${node.options.map(nodeToGbnf).join(" | ")})`;
    case "rep":
      return repeat(nodeToGbnf(node.node), node.min, node.max);
  }
}

function cpRanges(...chars: string[]): Range[] {
  return chars.map((c) => [c.codePointAt(0)!, c.codePointAt(0)!] as Range);
}

function repeat(inner: string, min: number, max: number): string {
  const group = `(${inner})`;
  if (min === 0 && max === 1) return `${group}?`;
  if (min === 0 && max === Infinity) return `${group}*`;
  if (min === 1 && max === Infinity) return `${group}+`;
  if (max === Infinity) return `${group}{${min},}`;
  return min === max ? `${group}{${min}}` : `${group}{${min},${max}}`;
}

/** A GBNF string literal matching the JSON-escaped form of `text`. */
function jsonLiteral(text: string): string {
  return gbnfLiteral(JSON.stringify(text).slice(1, -1));
}

export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    if (c === '"' || c === "\\") out += "\\" + c;
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return out + '"';
}

function classChar(cp: number): string {
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, "0")}`;
  const c = String.fromCodePoint(cp);
  if ("\\]-^[".includes(c)) return "\\" + c;
  return c;
}

function normalize(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: Range[] = [];
  for (const [lo, hi] of sorted) {
    const last = merged.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  return merged;
}

function complement(ranges: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of normalize(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

function subtract(ranges: Range[], minus: Range[]): Range[] {
  return complement([...complement(ranges), ...minus]);
}

function contains(ranges: Range[], cp: number): boolean {
  return ranges.some(([lo, hi]) => lo <= cp && cp <= hi);
}

/** A character class over JSON-escaped text: its plain members, or the escape of each member JSON must escape. */
function classToGbnf(cls: CharClass): string {
  const members = cls.negated ? complement(cls.ranges) : normalize(cls.ranges);
  const plain = subtract(members, MUST_ESCAPE);
  const options: string[] = [];
  if (plain.length > 0) {
    // Written negated when that is shorter (a `.` is "anything but these").
    const outside = complement(plain);
    const [ranges, prefix] = outside.length <= plain.length ? [outside, "^"] : [plain, ""];
    options.push(
      `[${prefix}${
        ranges.map(([lo, hi]) => lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`).join("")
      }]`,
    );
  }
  for (const [cp, escape] of Object.entries(JSON_ESCAPES)) {
    if (contains(members, Number(cp))) options.push(gbnfLiteral(escape));
  }
  if (options.length === 0) throw new GbnfTranslationError("a character class that matches nothing");
  return options.length === 1 ? options[0] : `(${options.join(" | ")})`;
}

const DIGIT: Range[] = [[0x30, 0x39]];
const WORD: Range[] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: Range[] = [[0x09, 0x0d], [0x20, 0x20]];

/** A regular expression (the subset custom tools use) as a GBNF expression over JSON-escaped text. */
export function regexToGbnf(source: string, flags: string): string {
  if (flags.includes("i")) throw new GbnfTranslationError("case-insensitive regexes are not translated");
  return new RegexTranslator(source, flags.includes("s")).translate();
}

const LITERAL = /^"(?:[^"\\]|\\.)*"$/;

class RegexTranslator {
  #pos = 0;
  constructor(readonly source: string, readonly dotAll: boolean) {}

  translate(): string {
    const out = this.#alternatives();
    if (this.#pos < this.source.length) this.#fail("unexpected ')'");
    return out;
  }

  #fail(why: string): never {
    throw new GbnfTranslationError(`${why} in /${this.source}/`);
  }

  #alternatives(): string {
    const options = [this.#sequence()];
    while (this.source[this.#pos] === "|") {
      this.#pos++;
      options.push(this.#sequence());
    }
    return options.length === 1 ? options[0] : `(${options.join(" | ")})`;
  }

  #sequence(): string {
    const items: string[] = [];
    while (this.#pos < this.source.length && this.source[this.#pos] !== "|" && this.source[this.#pos] !== ")") {
      const c = this.source[this.#pos];
      if (c === "^" && this.#pos === 0) {
        this.#pos++;
        continue;
      }
      if (c === "$" && this.#pos === this.source.length - 1) {
        this.#pos++;
        continue;
      }
      items.push(this.#quantified(this.#atom()));
    }
    // Adjacent plain literals read as one ("yes", not "y" "e" "s").
    const merged: string[] = [];
    for (const item of items) {
      const last = merged.at(-1);
      if (last && LITERAL.test(last) && LITERAL.test(item)) {
        merged[merged.length - 1] = last.slice(0, -1) + item.slice(1);
      } else merged.push(item);
    }
    return merged.length === 0 ? '""' : merged.join(" ");
  }

  #quantified(atom: string): string {
    const rest = this.source.slice(this.#pos);
    let min: number, max: number, length: number;
    const braces = /^\{(\d+)(,(\d*))?\}/.exec(rest);
    if (rest[0] === "?") [min, max, length] = [0, 1, 1];
    else if (rest[0] === "*") [min, max, length] = [0, Infinity, 1];
    else if (rest[0] === "+") [min, max, length] = [1, Infinity, 1];
    else if (braces) {
      min = Number(braces[1]);
      max = braces[2] === undefined ? min : braces[3] === "" ? Infinity : Number(braces[3]);
      length = braces[0].length;
    } else return atom;
    this.#pos += length;
    if (this.source[this.#pos] === "?") this.#pos++; // lazy: the same language
    if (this.source[this.#pos] === "+") this.#fail("possessive quantifiers are not translated");
    return repeat(atom, min, max);
  }

  #atom(): string {
    const c = this.source[this.#pos++];
    switch (c) {
      case "(": {
        if (this.source.startsWith("?:", this.#pos)) this.#pos += 2;
        else if (this.source[this.#pos] === "?") this.#fail("lookarounds and named groups are not translated");
        const inner = this.#alternatives();
        if (this.source[this.#pos++] !== ")") this.#fail("unclosed group");
        return `(${inner})`;
      }
      case "[":
        return classToGbnf(this.#class());
      case ".":
        return classToGbnf(this.dotAll ? { negated: true, ranges: [] } : { negated: true, ranges: [[0x0a, 0x0a]] });
      case "\\":
        return this.#escape(false);
      case "*":
      case "+":
      case "?":
      case "{":
        if (c === "{" && !/^\d/.test(this.source[this.#pos] ?? "")) return jsonLiteral(c);
        return this.#fail(`nothing to repeat at ${this.#pos - 1}`);
      case "^":
      case "$":
        return this.#fail("anchors inside the pattern are not translated");
      default: {
        const cp = this.source.codePointAt(this.#pos - 1)!;
        if (cp > 0xffff) this.#pos++;
        return jsonLiteral(String.fromCodePoint(cp));
      }
    }
  }

  /** An escape after `\`: a class (\d, \w, \s and negations) or one character. */
  #escape(inClass: true): CharClass;
  #escape(inClass: false): string;
  #escape(inClass: boolean): string | CharClass {
    const c = this.source[this.#pos++];
    const cls = (negated: boolean, ranges: Range[]): CharClass => ({ negated, ranges });
    let result: CharClass;
    switch (c) {
      case "d":
      case "D":
        result = cls(c === "D", DIGIT);
        break;
      case "w":
      case "W":
        result = cls(c === "W", WORD);
        break;
      case "s":
      case "S":
        result = cls(c === "S", SPACE);
        break;
      case "b":
      case "B":
        if (inClass && c === "b") return cls(false, [[0x08, 0x08]]);
        return this.#fail("word boundaries are not translated");
      default: {
        if (c === undefined) this.#fail("a trailing backslash");
        if (/[1-9k]/.test(c)) this.#fail("backreferences are not translated");
        const cp = this.#escapedChar(c);
        result = cls(false, [[cp, cp]]);
      }
    }
    if (inClass) return result;
    return classToGbnf(result);
  }

  #escapedChar(c: string): number {
    const simple: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, f: 0x0c, v: 0x0b, "0": 0x00 };
    if (c in simple) return simple[c];
    const hex = c === "x" ? 2 : c === "u" ? 4 : 0;
    if (hex) {
      const digits = this.source.slice(this.#pos, this.#pos + hex);
      if (!new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(digits)) this.#fail(`bad \\${c} escape`);
      this.#pos += hex;
      return parseInt(digits, 16);
    }
    return c.codePointAt(0)!;
  }

  #class(): CharClass {
    const negated = this.source[this.#pos] === "^";
    if (negated) this.#pos++;
    const ranges: Range[] = [];
    let first = true;
    for (;;) {
      const c = this.source[this.#pos];
      if (c === undefined) this.#fail("unclosed character class");
      if (c === "]" && !first) {
        this.#pos++;
        break;
      }
      first = false;
      let lo: number;
      this.#pos++;
      if (c === "\\") {
        const escaped = this.#escape(true);
        const members = escaped.negated ? complement(escaped.ranges) : escaped.ranges;
        if (members.length !== 1 || members[0][0] !== members[0][1]) {
          ranges.push(...members);
          continue;
        }
        lo = members[0][0];
      } else if (c === "[") {
        return this.#fail("nested classes are not translated");
      } else lo = c.codePointAt(0)!;
      if (this.source[this.#pos] === "-" && this.source[this.#pos + 1] !== "]" && this.#pos + 1 < this.source.length) {
        this.#pos++;
        let hi: string | number = this.source[this.#pos++];
        if (hi === "\\") {
          const escaped = this.#escape(true);
          if (escaped.ranges.length !== 1 || escaped.negated) this.#fail("a range ends in a class");
          hi = escaped.ranges[0][0];
        } else hi = hi.codePointAt(0)!;
        if (hi < lo) this.#fail("a range out of order");
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    return { negated, ranges };
  }
}
