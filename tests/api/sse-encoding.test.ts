/**
 * The per-token SSE chunks (OpenAI `chat.completion.chunk`, Anthropic `content_block_delta`) are written from
 * strings rather than objects: each must still be exactly the bytes `JSON.stringify` gives for the object the
 * client reads — same fields, same order — for any text, including quotes, escapes, control characters, line
 * separators and astral characters.
 */
import assert from "node:assert/strict";
import { AnthropicStreamEncoder } from "../../src/api/anthropic/render.ts";
import { ChatChunkEncoder } from "../../src/api/openai/render.ts";
import type { JobEvent } from "../../src/protocol/events.ts";

const TEXTS = [
  "Hello",
  " world",
  'a "quoted" \\ back\\slash',
  "line\nbreak\ttab\u0000\u001f",
  "\u2028\u2029",
  "é😀𝄞",
  "",
];
const meta = { id: "abc123", created: 1_700_000_000, model: 'tiny "model"' };

/** Every `data:` line of an SSE text, as written (key order included). */
function dataLines(sse: string): string[] {
  return sse.split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]");
}

/** What `JSON.stringify` writes for each object: the bytes the encoder must send. */
const asLines = (objects: unknown[]) => objects.map((o) => `data: ${JSON.stringify(o)}`);

Deno.test("OpenAI content and reasoning chunks are the chunk objects' exact JSON", () => {
  const encoder = new ChatChunkEncoder(meta, false);
  const chunks = dataLines(encoder.push({ type: "start", model: meta.model }));
  for (const text of TEXTS) {
    chunks.push(...dataLines(encoder.push({ type: "text", text })));
    chunks.push(...dataLines(encoder.push({ type: "reasoning", text })));
  }
  const expected = [{ role: "assistant", content: "" }];
  for (const text of TEXTS.filter(Boolean)) {
    expected.push({ content: text } as never, { reasoning_content: text } as never);
  }
  assert.deepEqual(
    chunks,
    asLines(expected.map((delta) => ({
      id: "chatcmpl-abc123",
      object: "chat.completion.chunk",
      created: meta.created,
      model: meta.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: null }],
    }))),
  );
});

Deno.test("Anthropic text deltas are the event objects' exact JSON, on the open text block", () => {
  const encoder = new AnthropicStreamEncoder(meta);
  let sse = encoder.push({ type: "start", model: meta.model, promptTokens: 3 });
  for (const text of TEXTS) sse += encoder.push({ type: "text", text });
  sse += encoder.push({ type: "reasoning", text: "think" } as JobEvent);
  sse += encoder.push({ type: "text", text: "after" });
  const deltas = dataLines(sse).filter((line) => line.startsWith('data: {"type":"content_block_delta"'));
  assert.deepEqual(
    deltas,
    asLines([
      ...TEXTS.filter(Boolean).map((text) => ({
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text },
      })),
      { type: "content_block_delta", index: 1, delta: { type: "thinking_delta", thinking: "think" } },
      { type: "content_block_delta", index: 2, delta: { type: "text_delta", text: "after" } },
    ]),
  );
  for (const block of sse.split("\n\n").filter((b) => b.includes('"content_block_delta"'))) {
    assert.ok(block.startsWith("event: content_block_delta\ndata: "), "each delta names its event");
  }
});
