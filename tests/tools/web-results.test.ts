/**
 * The router's reading of web_search results for Anthropic's server tools: the tools worker's result text parses
 * into hits and prints back the same, Anthropic's domain rules, and the encrypted_content token round trip.
 */
import assert from "node:assert/strict";
import {
  decodeHit,
  domainAllowed,
  encodeHit,
  matchesDomain,
  parseSearchText,
  searchResultText,
} from "../../src/tools/web-results.ts";

// The layout workers/tools/web-search.ts writes (its own test pins it: tests/tools/tools-worker.test.ts).
const WORKER_TEXT = [
  "1. Deno docs\n   https://docs.deno.com/\n   The Deno manual",
  "2. Second\n   https://example.com/2\n   Another result\n   more snippet\n   (2 days ago)",
  "3. Bare\n   https://bare.example/",
].join("\n\n");

Deno.test("search text parses into hits and prints back unchanged", () => {
  const hits = parseSearchText(WORKER_TEXT);
  assert.deepEqual(hits, [
    { title: "Deno docs", url: "https://docs.deno.com/", snippet: "The Deno manual" },
    { title: "Second", url: "https://example.com/2", snippet: "Another result\nmore snippet", pageAge: "2 days ago" },
    { title: "Bare", url: "https://bare.example/", snippet: "" },
  ]);
  assert.equal(searchResultText("q", hits), WORKER_TEXT);
  assert.deepEqual(parseSearchText('No results for "q".'), []);
  assert.equal(searchResultText("q", []), 'No results for "q".');
});

Deno.test("domain rules: subdomains count, paths narrow, schemes are ignored", () => {
  assert.ok(matchesDomain("https://docs.example.com/a", "example.com"));
  assert.ok(matchesDomain("https://example.com/", "https://example.com"));
  assert.ok(!matchesDomain("https://notexample.com/", "example.com"));
  assert.ok(matchesDomain("https://example.com/docs/x", "example.com/docs"));
  assert.ok(!matchesDomain("https://example.com/blog", "example.com/docs"));
  assert.ok(!matchesDomain("not a url", "example.com"));
  assert.ok(domainAllowed("https://a.example/", undefined, undefined));
  assert.ok(!domainAllowed("https://a.example/", ["b.example"], undefined));
  assert.ok(domainAllowed("https://x.b.example/", ["b.example"], undefined));
  assert.ok(!domainAllowed("https://x.b.example/", undefined, ["b.example"]));
});

Deno.test("encrypted_content: Auxot's token carries the hit; other tokens are not read", () => {
  const hit = { title: "Grüße — 東京", url: "https://example.com/?q=a+b", snippet: "line 1\nline 2", pageAge: "1 day" };
  const token = encodeHit(hit);
  assert.match(token, /^auxot1\.[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeHit(token), hit);
  const noAge = { title: "t", url: "https://e.example/", snippet: "" };
  assert.deepEqual(decodeHit(encodeHit(noAge)), noAge);
  assert.equal(decodeHit("EqwdAnthropicOpaque"), undefined);
  assert.equal(decodeHit("auxot1.!!!"), undefined);
});
