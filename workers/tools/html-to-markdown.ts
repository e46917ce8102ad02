/**
 * A small HTML → Markdown converter for web_fetch: what a model needs from a page is its readable text with
 * headings, links, lists, code and tables — not a faithful DOM. It keeps the page's <main> or <article> when
 * there is one, drops scripts, styles, navigation and forms, and never runs anything.
 *
 * Linear time by construction, because any page the model visits is input: one forward pass over the text (a tag's
 * quoted attribute values are skipped with one search each, and a tag left open at the end of the page ends the page,
 * as in browsers), output kept as a list of pieces whose trailing spaces are trimmed in place, list indentation capped,
 * and no regular expression that can backtrack over more than one bounded token.
 */

const DROPPED = new Set([
  "script",
  "style",
  "noscript",
  "template",
  "svg",
  "nav",
  "aside",
  "form",
  "button",
  "select",
  "iframe",
  "object",
  "canvas",
  "head",
]);
const BLOCKS = new Set([
  "p",
  "div",
  "section",
  "article",
  "main",
  "header",
  "footer",
  "figure",
  "figcaption",
  "table",
  "dl",
  "dt",
  "dd",
  "address",
  "details",
  "summary",
]);
const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
  mdash: "—",
  ndash: "–",
  hellip: "…",
  copy: "©",
  reg: "®",
  trade: "™",
  rsquo: "’",
  lsquo: "‘",
  rdquo: "”",
  ldquo: "“",
  laquo: "«",
  raquo: "»",
  middot: "·",
  bull: "•",
  times: "×",
  euro: "€",
};

export function decodeEntities(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&(#x[0-9a-f]{1,8}|#\d{1,9}|[a-z][a-z0-9]{0,31});/gi, (whole, name: string) => {
    if (name[0] === "#") {
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : Number(name.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

export interface Converted {
  title?: string;
  markdown: string;
}

export function htmlToMarkdown(html: string, baseUrl: string): Converted {
  const source = withoutComments(html);
  const lower = asciiLower(source);
  let title: string | undefined;
  const titleAt = lower.indexOf("<title");
  const titleOpenEnd = titleAt >= 0 ? lower.indexOf(">", titleAt) : -1;
  const titleEnd = titleOpenEnd >= 0 ? lower.indexOf("</title", titleOpenEnd) : -1;
  if (titleEnd >= 0) {
    title = decodeEntities(source.slice(titleOpenEnd + 1, titleEnd)).replace(/\s+/g, " ").trim() || undefined;
  }
  return { title, markdown: convert(mainContent(source, lower), baseUrl) };
}

function withoutComments(html: string): string {
  let out = "";
  let at = 0;
  for (;;) {
    const open = html.indexOf("<!--", at);
    if (open < 0) return out + html.slice(at);
    out += html.slice(at, open);
    const close = html.indexOf("-->", open + 4);
    if (close < 0) return out;
    at = close + 3;
  }
}

/** Lower-cases A–Z only, so that indices stay those of the original text. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/** The first <main> or <article> up to the last matching close tag, else the whole page. */
function mainContent(source: string, lower: string): string {
  let best: { name: string; at: number } | undefined;
  for (const name of ["main", "article"]) {
    let at = lower.indexOf(`<${name}`);
    while (at >= 0 && /[a-z0-9-]/.test(lower[at + name.length + 1] ?? "")) at = lower.indexOf(`<${name}`, at + 1);
    if (at >= 0 && (!best || at < best.at)) best = { name, at };
  }
  if (!best) return source;
  const openEnd = lower.indexOf(">", best.at);
  const close = lower.lastIndexOf(`</${best.name}`);
  return openEnd >= 0 && close > openEnd ? source.slice(openEnd + 1, close) : source;
}

/** Output pieces; trailing spaces are trimmed from the end in place (amortised: each trimmed char once). */
class Output {
  readonly parts: string[] = [];
  /** Pieces of text with something other than whitespace, so far: tells whether a link wrapped anything. */
  textCount = 0;

  push(text: string): void {
    if (text) this.parts.push(text);
  }

  text(text: string): void {
    if (!text) return;
    this.parts.push(text);
    if (/\S/.test(text)) this.textCount++;
  }

  trimTrailingSpaces(): void {
    while (this.parts.length > 0) {
      const last = this.parts[this.parts.length - 1];
      let end = last.length;
      while (end > 0 && (last[end - 1] === " " || last[end - 1] === "\t")) end--;
      if (end > 0) {
        this.parts[this.parts.length - 1] = last.slice(0, end);
        return;
      }
      this.parts.pop();
    }
  }

  block(): void {
    this.trimTrailingSpaces();
    this.parts.push("\n\n");
  }
}

const MAX_INDENT_LEVELS = 8;
const MAX_OPEN_LINKS = 16;

function convert(html: string, baseUrl: string): string {
  const out = new Output();
  let dropDepth = 0;
  let dropTag = "";
  let preDepth = 0;
  const lists: { ordered: boolean; n: number }[] = [];
  const links: { href?: string; part: number; textCount: number }[] = [];
  let i = 0;
  let textStart = 0;
  const flushText = (end: number) => {
    if (dropDepth === 0 && end > textStart) {
      const decoded = decodeEntities(html.slice(textStart, end));
      out.text(preDepth > 0 ? decoded : decoded.replace(/\s+/g, " "));
    }
  };
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) break;
    const tag = readTag(html, lt);
    if (tag === "not_a_tag") {
      i = lt + 1;
      continue;
    }
    flushText(lt);
    if (tag === "unterminated") {
      textStart = html.length; // a tag open at the end of the page ends the page, as in browsers
      break;
    }
    i = textStart = tag.end;
    const { name, closing, attrs } = tag;
    if (dropDepth > 0) {
      if (name === dropTag) dropDepth += closing ? -1 : 1;
      continue;
    }
    if (DROPPED.has(name) && !closing && !attrs.trim().endsWith("/")) {
      dropDepth = 1;
      dropTag = name;
      continue;
    }
    switch (name) {
      case "h1":
      case "h2":
      case "h3":
      case "h4":
      case "h5":
      case "h6":
        out.block();
        if (!closing) out.push("#".repeat(Number(name[1])) + " ");
        break;
      case "br":
        out.push("\n");
        break;
      case "hr":
        out.block();
        out.push("---");
        out.block();
        break;
      case "pre":
        preDepth = Math.max(0, preDepth + (closing ? -1 : 1));
        out.push(closing ? "\n```\n\n" : "\n\n```\n");
        break;
      case "code":
        if (preDepth === 0) out.push("`");
        break;
      case "strong":
      case "b":
        out.push("**");
        break;
      case "em":
      case "i":
        out.push("*");
        break;
      case "ul":
      case "ol":
        if (closing) lists.pop();
        else lists.push({ ordered: name === "ol", n: 0 });
        out.trimTrailingSpaces();
        out.push("\n");
        break;
      case "li": {
        if (closing) break;
        const list = lists.at(-1);
        const indent = "  ".repeat(Math.min(MAX_INDENT_LEVELS, Math.max(0, lists.length - 1)));
        out.trimTrailingSpaces();
        out.push("\n" + indent + (list?.ordered ? `${++list.n}. ` : "- "));
        break;
      }
      case "blockquote":
        out.block();
        if (!closing) out.push("> ");
        break;
      case "tr":
        if (!closing) out.push("\n|");
        break;
      case "td":
      case "th":
        out.push(closing ? " |" : " ");
        break;
      case "a": {
        if (closing) {
          const link = links.pop();
          if (!link?.href) break;
          // A link around nothing (an icon) leaves nothing behind.
          if (out.textCount === link.textCount) out.parts[link.part] = "";
          else out.push(`](${link.href})`);
        } else if (links.length < MAX_OPEN_LINKS) {
          const href = resolveHref(attr(attrs, "href"), baseUrl);
          links.push({ href, part: out.parts.length, textCount: out.textCount });
          if (href) out.parts.push("[");
        }
        break;
      }
      case "img": {
        const alt = attr(attrs, "alt");
        if (alt) out.text(`[image: ${decodeEntities(alt)}]`);
        break;
      }
      default:
        if (BLOCKS.has(name)) out.block();
    }
  }
  flushText(html.length);
  return out.parts.join("")
    .split("\n").map((line) => line.trimEnd()).join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

interface Tag {
  name: string;
  closing: boolean;
  attrs: string;
  /** Index just past the tag's `>`. */
  end: number;
}

/**
 * Reads the tag starting at `lt`: each character is looked at once, and a quoted value is skipped with one search
 * for its closing quote. `not_a_tag` when `<` does not start a tag (it is text); `unterminated` when the page ends
 * inside the tag.
 */
function readTag(html: string, lt: number): Tag | "not_a_tag" | "unterminated" {
  const closing = html[lt + 1] === "/";
  const nameStart = lt + (closing ? 2 : 1);
  let k = nameStart;
  while (k < html.length && isNameChar(html.charCodeAt(k), k === nameStart)) k++;
  if (k === nameStart) return "not_a_tag";
  const name = asciiLower(html.slice(nameStart, k));
  const attrsStart = k;
  while (k < html.length) {
    const c = html[k];
    if (c === ">") return { name, closing, attrs: html.slice(attrsStart, k), end: k + 1 };
    if (c === "=") {
      k++;
      while (k < html.length && (html[k] === " " || html[k] === "\t" || html[k] === "\n" || html[k] === "\r")) k++;
      if (html[k] === '"' || html[k] === "'") {
        const close = html.indexOf(html[k], k + 1);
        if (close < 0) return "unterminated";
        k = close + 1;
      }
      continue;
    }
    k++;
  }
  return "unterminated";
}

function isNameChar(code: number, first: boolean): boolean {
  const letter = (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
  return first ? letter : letter || (code >= 48 && code <= 57) || code === 45;
}

function attr(attrs: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, "i").exec(attrs);
  return m ? (m[2] ?? m[3] ?? m[4]) : undefined;
}

function resolveHref(href: string | undefined, baseUrl: string): string | undefined {
  if (!href) return undefined;
  try {
    const url = new URL(decodeEntities(href), baseUrl);
    return url.protocol === "http:" || url.protocol === "https:" || url.protocol === "mailto:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}
