/**
 * A small HTML → Markdown converter for web_fetch: what a model needs from a page is its readable text with
 * headings, links, lists, code and tables — not a faithful DOM. It keeps the page's <main> or <article> when
 * there is one, drops scripts, styles, navigation and forms, and never runs anything. A tolerant tokenizer,
 * not a parser: malformed markup degrades to plain text rather than failing.
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
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
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
  const titleMatch = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html);
  const title = titleMatch ? decodeEntities(titleMatch[1]).replace(/\s+/g, " ").trim() || undefined : undefined;
  let source = html.replace(/<!--[\s\S]*?-->/g, "");
  const main = /<(main|article)\b[^>]*>([\s\S]*)<\/\1>/i.exec(source);
  if (main) source = main[2];
  return { title, markdown: convert(source, baseUrl) };
}

function convert(html: string, baseUrl: string): string {
  let out = "";
  let dropDepth = 0;
  let dropTag = "";
  let preDepth = 0;
  const lists: { ordered: boolean; n: number }[] = [];
  const links: (string | undefined)[] = [];
  const tag = /<\/?([a-zA-Z][a-zA-Z0-9-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/g;
  let last = 0;
  const block = () => (out = out.replace(/[ \t]+$/, "") + "\n\n");
  for (let m = tag.exec(html);; m = tag.exec(html)) {
    const text = html.slice(last, m ? m.index : html.length);
    if (dropDepth === 0 && text) {
      const decoded = decodeEntities(text);
      out += preDepth > 0 ? decoded : decoded.replace(/\s+/g, " ");
    }
    if (!m) break;
    last = tag.lastIndex;
    const name = m[1].toLowerCase();
    const closing = m[0][1] === "/";
    const attrs = m[2];
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
        block();
        if (!closing) out += "#".repeat(Number(name[1])) + " ";
        break;
      case "br":
        out += "\n";
        break;
      case "hr":
        block();
        out += "---";
        block();
        break;
      case "pre":
        preDepth += closing ? -1 : 1;
        out += closing ? "\n```\n\n" : "\n\n```\n";
        break;
      case "code":
        if (preDepth === 0) out += "`";
        break;
      case "strong":
      case "b":
        out += "**";
        break;
      case "em":
      case "i":
        out += "*";
        break;
      case "ul":
      case "ol":
        if (closing) lists.pop();
        else lists.push({ ordered: name === "ol", n: 0 });
        out = out.replace(/[ \t]+$/, "") + "\n";
        break;
      case "li": {
        if (closing) break;
        const list = lists.at(-1);
        const indent = "  ".repeat(Math.max(0, lists.length - 1));
        out = out.replace(/[ \t]+$/, "") + "\n" + indent + (list?.ordered ? `${++list.n}. ` : "- ");
        break;
      }
      case "blockquote":
        block();
        if (!closing) out += "> ";
        break;
      case "tr":
        if (!closing) out += "\n|";
        break;
      case "td":
      case "th":
        if (closing) out += " |";
        else out += " ";
        break;
      case "a": {
        if (closing) {
          const href = links.pop();
          if (href) out += `](${href})`;
        } else {
          const href = resolveHref(attr(attrs, "href"), baseUrl);
          links.push(href);
          if (href) out += "[";
        }
        break;
      }
      case "img": {
        const alt = attr(attrs, "alt");
        if (alt) out += `[image: ${decodeEntities(alt)}]`;
        break;
      }
      default:
        if (BLOCKS.has(name)) block();
    }
  }
  return out
    .replace(/\[\s*\]\([^)]*\)/g, "") // links around nothing (icons)
    .split("\n").map((line) => line.replace(/\s+$/, "")).join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
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
