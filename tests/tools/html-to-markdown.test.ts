/**
 * web_fetch's HTML → Markdown on hostile pages: the shapes that made the old converter quadratic or worse ("<ul><li>"
 * ×400 took 12.7 s), at 200+ KB each, and thousands of random tag soups. The conversions run in a Worker that the
 * test ends after 60 s — a bound, not a speed assertion: a linear converter does all of this in well under a second
 * on this machine, a quadratic one would take hours. Output stays linear in the input too.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { htmlToMarkdown } from "../../workers/tools/html-to-markdown.ts";

const N = 25_000;
const ADVERSARIAL: { name: string; html: string }[] = [
  { name: "nested lists", html: "<ul><li>".repeat(N) },
  { name: "nested ordered lists with text", html: "<ol><li>x".repeat(N) },
  { name: "unclosed quotes", html: '<a x="'.repeat(N) },
  { name: "attribute soup", html: "<a " + 'b="c" '.repeat(N) + "href " + " ".repeat(N) },
  { name: "lone brackets", html: "<".repeat(N * 8) },
  { name: "tag starts", html: "<a".repeat(N * 4) },
  { name: "closers", html: "</".repeat(N * 4) },
  { name: "comment openers", html: "<!--".repeat(N * 2) },
  { name: "title openers", html: "<title>".repeat(N) },
  { name: "main openers", html: "<main>".repeat(N) + "x" },
  { name: "entities", html: "&".repeat(N) + "&a".repeat(N) + "&#x".repeat(N) + "&" + "a".repeat(N * 4) },
  { name: "space runs", html: "<p>" + " ".repeat(N * 8) + "x</p>" + "\t ".repeat(N * 4) + "<br>" },
  { name: "empty links", html: '<a href="/x">'.repeat(N) + "</a>".repeat(N) },
  { name: "list items in one list", html: "<ul>" + "<li> ".repeat(N) + "</ul>" },
  { name: "dropped tags", html: "<script>".repeat(N) + "x" },
  { name: "pre and code", html: "<pre><code>".repeat(N) },
  { name: "tables", html: "<tr><td>".repeat(N) },
  { name: "blocks", html: "<div>".repeat(N) + "<h1>".repeat(N) },
];

Deno.test("HTML → Markdown: adversarial pages of 200+ KB finish within a bound, output linear in input", async () => {
  const worker = new Worker(new URL("./html-adversarial-worker.ts", import.meta.url), { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const results = await Promise.race([
      new Promise<{ name: string; inputLength: number; outputLength: number; ms: number }[]>((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage(ADVERSARIAL);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the converter did not finish within 60 s")), 60_000);
      }),
    ]);
    const total = results.reduce((sum, r) => sum + r.ms, 0);
    console.log(
      `html→markdown: ${results.length} adversarial pages, ${
        (results.reduce((s, r) => s + r.inputLength, 0) / 1e6).toFixed(1)
      } MB in ${total.toFixed(0)} ms; slowest ${
        results.toSorted((a, b) => b.ms - a.ms).slice(0, 3).map((r) => `${r.name} ${r.ms.toFixed(0)} ms`).join(", ")
      }`,
    );
    for (const r of results) {
      assert.ok(r.inputLength >= 100_000, r.name);
      assert.ok(r.outputLength <= 4 * r.inputLength + 64, `${r.name}: ${r.outputLength} chars out of ${r.inputLength}`);
    }
  } finally {
    clearTimeout(timer);
    worker.terminate();
  }
});

Deno.test("HTML → Markdown: random tag soup never throws and stays linear in size", () => {
  const token = fc.constantFrom(
    "<ul>",
    "<li>",
    "</li>",
    "</ul>",
    "<ol>",
    "<a href='/x'>",
    '<a href="',
    "</a>",
    "<p>",
    "</p>",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    "<!--",
    "-->",
    "<title>",
    "</title>",
    "<main>",
    "</main>",
    "<",
    ">",
    '"',
    "'",
    "&amp;",
    "&#",
    "&#x1F600;",
    " ",
    "\n",
    "\t",
    "text",
    "<br/>",
    "<img alt='i'>",
    "<td>",
    "<tr>",
    "<h2>",
    "=",
    "<b>",
  );
  fc.assert(
    fc.property(fc.array(token, { maxLength: 400 }), (tokens) => {
      const html = tokens.join("");
      const { markdown } = htmlToMarkdown(html, "https://site.example/");
      assert.ok(markdown.length <= 4 * html.length + 64);
    }),
    { numRuns: 3_000, seed: 14 },
  );
});

Deno.test("HTML → Markdown: a quoted '>' stays in its attribute; a tag left open ends the page", () => {
  const { markdown } = htmlToMarkdown(
    `<p title="a>b">kept</p><a href="/y">link</a><p class="never`,
    "https://s.example/",
  );
  assert.equal(markdown, "kept\n\n[link](https://s.example/y)");
});
