/**
 * Lark grammars, as OpenAI Responses `custom` tools declare them (Codex's `apply_patch`): a parser for the subset
 * such tools use, and a recognizer that says whether a text is in the grammar's language. The router checks every
 * custom tool input with it (src/api/responses/), and the GPU worker translates the same tree into a llama.cpp
 * grammar (workers/gpu/lark-to-gbnf.ts). Pure: no I/O.
 *
 * Supported: rules and terminals (`name:` / `NAME:`, `?`/`!` modifiers and priorities ignored), alternatives with
 * `|` (also on continuation lines), `-> alias` (ignored), "strings" (with `i`), /regex/flags, "a".."z" ranges,
 * ( ) groups, [ ] optionals, `? * +`, `~n` and `~n..m`, `//` comments, and `%import common.X` for the usual
 * terminals. Not supported (a grammar using them is refused, since its inputs could not be checked): `%ignore`,
 * `%declare`, `%override`, `%extend`, templates.
 *
 * Matching follows Lark's lexer where it matters: a regex terminal matches greedily (its longest match at that
 * position); everything else explores every alternative, memoised per rule and position.
 */

export type LarkNode =
  | { t: "alt"; options: LarkNode[] }
  | { t: "seq"; items: LarkNode[] }
  | { t: "lit"; text: string; ci: boolean }
  | { t: "re"; source: string; flags: string }
  | { t: "range"; from: string; to: string }
  | { t: "ref"; name: string }
  | { t: "rep"; node: LarkNode; min: number; max: number };

export interface LarkGrammar {
  rules: Map<string, LarkNode>;
  start: string;
}

export class LarkGrammarError extends Error {}

/** `%import common.X` terminals (after lark/grammars/common.lark). */
const COMMON: Record<string, string> = {
  LF: String.raw`"\n"`,
  CR: String.raw`"\r"`,
  NEWLINE: String.raw`(CR? LF)+`,
  WS: String.raw`/[ \t\f\r\n]/+`,
  WS_INLINE: String.raw`(" "|/\t/)+`,
  DIGIT: String.raw`"0".."9"`,
  HEXDIGIT: String.raw`"a".."f"|"A".."F"|DIGIT`,
  INT: String.raw`DIGIT+`,
  SIGNED_INT: String.raw`["+"|"-"] INT`,
  LCASE_LETTER: String.raw`"a".."z"`,
  UCASE_LETTER: String.raw`"A".."Z"`,
  LETTER: String.raw`UCASE_LETTER | LCASE_LETTER`,
  WORD: String.raw`LETTER+`,
  CNAME: String.raw`("_"|LETTER) ("_"|LETTER|DIGIT)*`,
  ESCAPED_STRING: String.raw`/"(?:[^"\\]|\\.)*"/`,
};

/** Parses a Lark grammar. Throws LarkGrammarError naming what it cannot read. */
export function parseLark(source: string): LarkGrammar {
  const rules = new Map<string, LarkNode>();
  const statements: string[] = [];
  for (const rawLine of source.split("\n")) {
    const line = stripComment(rawLine);
    if (line.trim() === "") continue;
    if (/^\s*\|/.test(line) && statements.length > 0) {
      statements[statements.length - 1] += " " + line.trim();
    } else statements.push(line.trim());
  }
  const imports = new Set<string>();
  for (const statement of statements) {
    if (statement.startsWith("%import")) {
      const match = /^%import\s+common\s*(?:\.\s*(\w+)|\(\s*([\w\s,]+)\))\s*$/.exec(statement);
      if (!match) throw new LarkGrammarError(`unsupported import: ${statement}`);
      for (const name of (match[1] ?? match[2]).split(",").map((n) => n.trim())) {
        if (!COMMON[name]) throw new LarkGrammarError(`unknown common terminal ${name}`);
        imports.add(name);
      }
      continue;
    }
    if (statement.startsWith("%")) throw new LarkGrammarError(`unsupported directive: ${statement.split(/\s/)[0]}`);
    const match = /^[?!]?([A-Za-z_][A-Za-z0-9_]*)(?:\.-?\d+)?\s*:\s*(.*)$/.exec(statement);
    if (!match) throw new LarkGrammarError(`cannot read: ${statement.slice(0, 80)}`);
    if (rules.has(match[1])) throw new LarkGrammarError(`rule ${match[1]} is defined twice`);
    rules.set(match[1], new ExpansionParser(match[2]).parseAll());
  }
  // Imported terminals and the ones they use (NEWLINE needs CR and LF, ...).
  const pending = [...imports];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (rules.has(name)) continue;
    rules.set(name, new ExpansionParser(COMMON[name]).parseAll());
    for (const ref of refsOf(rules.get(name)!)) if (COMMON[ref] && !rules.has(ref)) pending.push(ref);
  }
  if (!rules.has("start")) throw new LarkGrammarError("the grammar has no 'start' rule");
  for (const [name, node] of rules) {
    for (const ref of refsOf(node)) {
      if (!rules.has(ref)) throw new LarkGrammarError(`rule ${name} uses undefined ${ref}`);
    }
  }
  return { rules, start: "start" };
}

function stripComment(line: string): string {
  // A `//` outside a string or regex starts a comment.
  let inString = false;
  let inRegex = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (!inRegex && c === '"') inString = !inString;
    else if (!inString && c === "/" && line[i + 1] === "/" && !inRegex) return line.slice(0, i);
    else if (!inString && c === "/") inRegex = !inRegex;
  }
  return line;
}

function refsOf(node: LarkNode): string[] {
  switch (node.t) {
    case "ref":
      return [node.name];
    case "alt":
      return node.options.flatMap(refsOf);
    case "seq":
      return node.items.flatMap(refsOf);
    case "rep":
      return refsOf(node.node);
    default:
      return [];
  }
}

class ExpansionParser {
  #pos = 0;
  constructor(readonly text: string) {}

  parseAll(): LarkNode {
    const node = this.#alternatives();
    this.#space();
    if (this.#pos < this.text.length) this.#fail("unexpected text");
    return node;
  }

  #fail(why: string): never {
    throw new LarkGrammarError(`${why} at '${this.text.slice(this.#pos, this.#pos + 30)}' in '${this.text}'`);
  }

  #space() {
    while (this.#pos < this.text.length && /\s/.test(this.text[this.#pos])) this.#pos++;
  }

  #peek(token: string): boolean {
    this.#space();
    return this.text.startsWith(token, this.#pos);
  }

  #alternatives(): LarkNode {
    const options = [this.#sequence()];
    while (this.#peek("|")) {
      this.#pos++;
      options.push(this.#sequence());
    }
    return options.length === 1 ? options[0] : { t: "alt", options };
  }

  #sequence(): LarkNode {
    const items: LarkNode[] = [];
    for (;;) {
      this.#space();
      const c = this.text[this.#pos];
      if (c === undefined || c === "|" || c === ")" || c === "]") break;
      if (this.text.startsWith("->", this.#pos)) {
        this.#pos += 2;
        this.#space();
        if (!/[A-Za-z_]/.test(this.text[this.#pos] ?? "")) this.#fail("expected an alias name");
        while (/\w/.test(this.text[this.#pos] ?? "")) this.#pos++;
        break;
      }
      items.push(this.#quantified());
    }
    return items.length === 1 ? items[0] : { t: "seq", items };
  }

  #quantified(): LarkNode {
    let node = this.#atom();
    for (;;) {
      const c = this.text[this.#pos];
      if (c === "?") node = { t: "rep", node, min: 0, max: 1 };
      else if (c === "*") node = { t: "rep", node, min: 0, max: Infinity };
      else if (c === "+") node = { t: "rep", node, min: 1, max: Infinity };
      else if (c === "~") {
        const match = /^~\s*(\d+)(?:\s*\.\.\s*(\d+))?/.exec(this.text.slice(this.#pos));
        if (!match) this.#fail("bad repetition");
        this.#pos += match[0].length;
        node = { t: "rep", node, min: Number(match[1]), max: Number(match[2] ?? match[1]) };
        continue;
      } else break;
      this.#pos++;
    }
    return node;
  }

  #atom(): LarkNode {
    this.#space();
    const c = this.text[this.#pos];
    if (c === "(" || c === "[") {
      this.#pos++;
      const inner = this.#alternatives();
      const close = c === "(" ? ")" : "]";
      if (!this.#peek(close)) this.#fail(`expected '${close}'`);
      this.#pos++;
      return c === "(" ? inner : { t: "rep", node: inner, min: 0, max: 1 };
    }
    if (c === '"') {
      const text = this.#string();
      let ci = false;
      if (this.text[this.#pos] === "i") (ci = true, this.#pos++);
      if (this.#peek("..")) {
        this.#pos += 2;
        this.#space();
        const to = this.#string();
        if ([...text].length !== 1 || [...to].length !== 1) this.#fail("a range joins two single characters");
        return { t: "range", from: text, to };
      }
      return { t: "lit", text, ci };
    }
    if (c === "/") return this.#regex();
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.#pos));
    if (!name) this.#fail("expected a rule, terminal, string or regex");
    this.#pos += name[0].length;
    if (this.text[this.#pos] === "{") this.#fail("templates are not supported");
    return { t: "ref", name: name[0] };
  }

  #string(): string {
    const start = this.#pos;
    this.#pos++;
    while (this.#pos < this.text.length && this.text[this.#pos] !== '"') {
      if (this.text[this.#pos] === "\\") this.#pos++;
      this.#pos++;
    }
    if (this.text[this.#pos] !== '"') this.#fail("unterminated string");
    this.#pos++;
    try {
      return JSON.parse(this.text.slice(start, this.#pos));
    } catch {
      return this.#fail("bad string escape");
    }
  }

  #regex(): LarkNode {
    let i = this.#pos + 1;
    let inClass = false;
    for (; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === "\\") i++;
      else if (c === "[") inClass = true;
      else if (c === "]") inClass = false;
      else if (c === "/" && !inClass) break;
    }
    if (i >= this.text.length) this.#fail("unterminated regex");
    const source = this.text.slice(this.#pos + 1, i).replaceAll("\\/", "/");
    const flags = /^[imsulx]*/.exec(this.text.slice(i + 1))![0];
    this.#pos = i + 1 + flags.length;
    if (flags.includes("x") || flags.includes("l")) this.#fail("regex flags x and l are not supported");
    try {
      new RegExp(source, "y" + flags.replace("u", ""));
    } catch (error) {
      this.#fail(`bad regex (${(error as Error).message})`);
    }
    return { t: "re", source, flags: flags.replace("u", "") };
  }
}

/** Work limit for one check: a grammar and input that need more are reported as not matching. */
const STEP_LIMIT = 2_000_000;

/** Whether `input` is in the grammar's language (from the start rule, to the end of the input). */
export function larkMatches(grammar: LarkGrammar, input: string): boolean {
  const memo = new Map<string, Set<number>>();
  const regexes = new Map<LarkNode, RegExp>();
  let steps = 0;
  const ends = (node: LarkNode, pos: number): Set<number> => {
    if (++steps > STEP_LIMIT) throw new LarkGrammarError("the input is too costly to check");
    switch (node.t) {
      case "lit": {
        const slice = input.slice(pos, pos + node.text.length);
        const same = node.ci ? slice.toLowerCase() === node.text.toLowerCase() : slice === node.text;
        return same ? new Set([pos + node.text.length]) : new Set();
      }
      case "range": {
        const c = input.codePointAt(pos);
        if (c === undefined || c < node.from.codePointAt(0)! || c > node.to.codePointAt(0)!) return new Set();
        return new Set([pos + String.fromCodePoint(c).length]);
      }
      case "re": {
        let regex = regexes.get(node);
        if (!regex) regexes.set(node, regex = new RegExp(node.source, "y" + node.flags));
        regex.lastIndex = pos;
        const match = regex.exec(input);
        return match ? new Set([pos + match[0].length]) : new Set();
      }
      case "ref": {
        const key = `${node.name}@${pos}`;
        const known = memo.get(key);
        if (known) return known;
        memo.set(key, new Set()); // a left-recursive rule sees no match of itself at the same position
        const result = ends(grammar.rules.get(node.name)!, pos);
        memo.set(key, result);
        return result;
      }
      case "alt": {
        const result = new Set<number>();
        for (const option of node.options) for (const end of ends(option, pos)) result.add(end);
        return result;
      }
      case "seq": {
        let positions = new Set([pos]);
        for (const item of node.items) {
          const next = new Set<number>();
          for (const p of positions) for (const end of ends(item, p)) next.add(end);
          positions = next;
          if (positions.size === 0) break;
        }
        return positions;
      }
      case "rep": {
        const result = new Set<number>(node.min === 0 ? [pos] : []);
        let frontier = new Set([pos]);
        const seen = new Set<number>();
        for (let count = 1; count <= node.max && frontier.size > 0; count++) {
          const next = new Set<number>();
          for (const p of frontier) {
            for (const end of ends(node.node, p)) {
              // Past the minimum, a position already reached adds nothing new (and zero-width loops end).
              if (count > node.min && seen.has(end)) continue;
              next.add(end);
            }
          }
          for (const end of next) {
            if (count >= node.min) {
              result.add(end);
              seen.add(end);
            }
          }
          frontier = next;
        }
        return result;
      }
    }
  };
  try {
    return ends({ t: "ref", name: grammar.start }, 0).has(input.length);
  } catch (error) {
    if (error instanceof LarkGrammarError) return false;
    throw error;
  }
}
