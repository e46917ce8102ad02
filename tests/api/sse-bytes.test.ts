/**
 * The streamed relay writes SSE as bytes in place (src/api/sse-bytes.ts, the OpenAI chunk encoder's `pushBytes`,
 * `renderBatch` in src/dispatch/chat.ts). Held to the string path it replaced: for any events, in any batches, the
 * bytes sent are exactly TextEncoder's encoding of the encoders' strings joined — texts with quotes, escapes,
 * control characters, DEL, non-ASCII, astral and lone surrogates, non-ASCII model names, every flavour's encoder.
 */
import assert from "node:assert/strict";
import { AnthropicStreamEncoder } from "../../src/api/anthropic/render.ts";
import { ChatChunkEncoder, CompletionChunkEncoder } from "../../src/api/openai/render.ts";
import type { StreamEncoder } from "../../src/api/flavour.ts";
import { ResponsesStreamEncoder } from "../../src/api/responses/stream.ts";
import { SseBytes } from "../../src/api/sse-bytes.ts";
import { errorFromEvent, renderBatch } from "../../src/dispatch/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";

const TEXTS = [
  "Hello",
  " world",
  "~ !#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}",
  'a "quoted" \\ back\\slash',
  "back\\slash only",
  'quote " only',
  "line\nbreak\ttab\u0000\u001f",
  "del\u007f",
  "\u2028\u2029",
  "é😀𝄞",
  "lone \ud800 high",
  "lone \udc00 low",
  "\ud83d",
  "",
  "x".repeat(5_000),
];

function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

function randomEvent(random: () => number): JobEvent {
  const text = TEXTS[Math.floor(random() * TEXTS.length)];
  const pick = random();
  if (pick < 0.4) return { type: "text", text };
  if (pick < 0.6) return { type: "reasoning", text };
  if (pick < 0.65) return { type: "start", model: "m" };
  if (pick < 0.7) return { type: "progress", phase: "generate" };
  if (pick < 0.75) return { type: "tool_call", index: 0, id: "call_1", name: "f" };
  if (pick < 0.8) return { type: "tool_args", index: 0, delta: text };
  if (pick < 0.85) return { type: "usage", usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 } };
  if (pick < 0.9) return { type: "error", message: text, retryable: false, code: "engine_error" };
  return { type: "done", finishReason: "stop" };
}

/** The string path: each event's text joined, then encoded (what the relay sent before the byte path). */
function stringBatch(encoder: StreamEncoder, events: JobEvent[]): Uint8Array {
  let text = "";
  for (const event of events) {
    text += event.type === "error" ? encoder.fail(errorFromEvent(event)) : encoder.push(event);
  }
  if (events.length === 0) text = encoder.keepAlive();
  return new TextEncoder().encode(text);
}

const echo = (summary: boolean) => ({
  fields: { instructions: "be brief" },
  tools: {},
  summary,
  encryptedReasoning: false,
});

const metas = [
  { id: "abc123", created: 1_700_000_000, model: 'tiny "model"' },
  { id: "d9", created: 1, model: "modèle-😀" },
];
const encoders: [string, (meta: (typeof metas)[number]) => StreamEncoder][] = [
  ["chat", (meta) => new ChatChunkEncoder(meta, true)],
  ["chat without usage", (meta) => new ChatChunkEncoder(meta, false)],
  ["completions", (meta) => new CompletionChunkEncoder(meta, true)],
  ["anthropic", (meta) => new AnthropicStreamEncoder(meta)],
  ["responses", (meta) => new ResponsesStreamEncoder(meta, echo(false))],
  ["responses with reasoning summaries", (meta) => new ResponsesStreamEncoder(meta, echo(true))],
];

Deno.test("SSE bytes: every encoder's batches are the string path's bytes, for random events in random batches", () => {
  const random = seeded(20);
  for (const [name, make] of encoders) {
    for (const meta of metas) {
      for (let round = 0; round < 40; round++) {
        const byString = make(meta);
        const byBytes = make(meta);
        const out = new SseBytes();
        for (let batch = 0; batch < 8; batch++) {
          const events = Array.from({ length: Math.floor(random() * 12) }, () => randomEvent(random));
          const expected = stringBatch(byString, events);
          renderBatch(byBytes, events, out);
          assert.equal(out.length, expected.length, `${name}, ${meta.model}, round ${round}`);
          assert.deepEqual(out.take(), expected, `${name}, ${meta.model}, round ${round}`);
        }
      }
    }
  }
});

Deno.test("SSE bytes: a streamed answer's token chunks take the byte path", () => {
  const encoder = new ChatChunkEncoder(metas[0], false);
  const out = new SseBytes();
  assert.equal(encoder.pushBytes({ type: "text", text: "hi" }, out), false, "the role chunk goes first, as a string");
  encoder.push({ type: "start", model: "m" });
  for (const text of TEXTS) {
    assert.equal(encoder.pushBytes({ type: "text", text }, out), true);
    assert.equal(encoder.pushBytes({ type: "reasoning", text }, out), true);
  }
  assert.equal(encoder.pushBytes({ type: "done", finishReason: "stop" }, out), false);
});

Deno.test("SSE bytes: an Anthropic stream's text deltas take the byte path", () => {
  const encoder = new AnthropicStreamEncoder(metas[1]);
  const out = new SseBytes();
  assert.equal(encoder.pushBytes({ type: "text", text: "hi" }, out), false, "message_start goes first, as a string");
  encoder.push({ type: "start", model: "m" });
  assert.equal(encoder.pushBytes({ type: "text", text: "hi" }, out), false, "the block's start, as a string");
  encoder.push({ type: "text", text: "first" });
  for (const text of TEXTS.filter(Boolean)) assert.equal(encoder.pushBytes({ type: "text", text }, out), true);
  assert.equal(encoder.pushBytes({ type: "text", text: "" }, out), false);
  assert.equal(encoder.pushBytes({ type: "reasoning", text: "r" }, out), false);
  encoder.push({ type: "done", finishReason: "stop" });
  assert.equal(encoder.pushBytes({ type: "text", text: "late" }, out), false);
});

Deno.test("SSE bytes: a Responses stream's message text takes the byte path, numbered in sequence", () => {
  const encoder = new ResponsesStreamEncoder(metas[0], echo(false));
  const out = new SseBytes();
  assert.equal(encoder.pushBytes({ type: "text", text: "hi" }, out), false, "response.created goes first");
  encoder.push({ type: "start", model: "m" });
  assert.equal(encoder.pushBytes({ type: "text", text: "hi" }, out), false, "the message item opens as a string");
  encoder.push({ type: "text", text: "first" });
  for (const text of TEXTS.filter(Boolean)) assert.equal(encoder.pushBytes({ type: "text", text }, out), true);
  assert.equal(encoder.pushBytes({ type: "text", text: "" }, out), false);
  assert.equal(encoder.pushBytes({ type: "reasoning", text: "r" }, out), false);
  const done = encoder.push({ type: "done", finishReason: "stop" });
  assert.ok(done.includes('"text":"first' + TEXTS.filter(Boolean).join("").slice(0, 20)), "the text is in the item");
  assert.equal(encoder.pushBytes({ type: "text", text: "late" }, out), false);
});

Deno.test("SSE bytes: jsonString is JSON.stringify's UTF-8, and the writer grows", () => {
  const out = new SseBytes();
  const all: string[] = [];
  for (let code = 0; code < 0x3000; code += code < 0x100 ? 1 : 7) all.push(`a${String.fromCharCode(code)}b`);
  for (const text of [...TEXTS, ...all]) {
    out.jsonString(text);
    assert.deepEqual(out.take(), new TextEncoder().encode(JSON.stringify(text)), JSON.stringify(text));
  }
  for (const text of all) out.jsonString(text);
  assert.deepEqual(out.take(), new TextEncoder().encode(all.map((t) => JSON.stringify(t)).join("")));
  const huge = "y".repeat(300_000);
  out.jsonString(huge);
  assert.equal(out.take().length, 300_002);
  out.jsonString("small");
  assert.deepEqual(out.take(), new TextEncoder().encode('"small"'), "after a huge batch, a fresh buffer");
  out.text("dropped");
  out.clear();
  assert.equal(out.take().length, 0);
});
