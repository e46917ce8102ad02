/**
 * The worker's in-place SSE reader (workers/common/sse-data.ts) against the line-by-line generator it replaced (kept
 * here as the reference): the same payloads, in the same order, for engine-like streams, hand-picked edge cases
 * (CRLF, tabs, non-ASCII spaces, comments, multi-byte characters) and random text cut at random byte boundaries.
 */
import assert from "node:assert/strict";
import { SseDataLines } from "../../workers/common/sse-data.ts";

/** The reference: the external engine's former reader, verbatim but for taking chunks from an array. */
function referencePayloads(chunks: Uint8Array[]): string[] {
  const out: string[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  for (const chunk of chunks) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line.startsWith("data:")) out.push(line.slice(5).trimStart());
    }
  }
  return out;
}

function fastPayloads(chunks: Uint8Array[]): string[] {
  const lines = new SseDataLines();
  return chunks.flatMap((chunk) => lines.push(chunk));
}

/** Cuts bytes into pieces at pseudo-random offsets (some of them inside multi-byte characters). */
function cut(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + Math.floor(random() * (random() < 0.3 ? 4 : 64));
    pieces.push(bytes.slice(at, at + size));
    at += size;
  }
  return pieces;
}

function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

const encoder = new TextEncoder();
const engineStream = [
  ...Array.from(
    { length: 20 },
    (_, i) =>
      `data: ${
        JSON.stringify({ choices: [{ index: 0, delta: { content: `tok${i} é😀` }, finish_reason: null }] })
      }\n\n`,
  ),
  'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":20}}\r\n\r\n',
  "data: [DONE]\n\n",
].join("");

const edgeCases = [
  "data:x\n",
  "data: x\n",
  "data:   x\n",
  "data:\tx\n",
  "data: \t x\n",
  "data:\u00a0x\n",
  "data: \u2003x\n",
  "data: \ufeffx\n",
  "data:\n",
  "data:   \n",
  "data: \r\n",
  "data:x\r\r\n",
  "data: x \n",
  "data: 漢字\n",
  "data: x\r",
  ": comment\nevent: message\ndata: y\nid: 1\n\n",
  "DATA: no\ndata : no\n data: no\n",
  "\n\n\r\n",
  "data: unterminated",
];

Deno.test("SSE data lines: engine streams in every cut give the reference's payloads", () => {
  const bytes = encoder.encode(engineStream);
  assert.deepEqual(fastPayloads([bytes]), referencePayloads([bytes]));
  assert.equal(fastPayloads([bytes]).length, 22);
  for (let size = 1; size <= 40; size++) {
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.slice(at, at + size));
    assert.deepEqual(fastPayloads(pieces), referencePayloads(pieces), `pieces of ${size} bytes`);
  }
});

Deno.test("SSE data lines: edge cases, alone and together, whole and byte by byte", () => {
  for (const text of [...edgeCases, edgeCases.join(""), edgeCases.join("\n")]) {
    const bytes = encoder.encode(text);
    assert.deepEqual(fastPayloads([bytes]), referencePayloads([bytes]), JSON.stringify(text));
    const single = [...bytes].map((b) => new Uint8Array([b]));
    assert.deepEqual(fastPayloads(single), referencePayloads(single), JSON.stringify(text));
  }
});

Deno.test("SSE data lines: random streams cut at random places", () => {
  const alphabet = ["data:", "data: ", "\n", "\r\n", "\r", " ", "\t", "\u00a0", "x", "é", "😀", ":", "[DONE]", "{}"];
  const random = seeded(20);
  for (let round = 0; round < 500; round++) {
    let text = "";
    const parts = 1 + Math.floor(random() * 40);
    for (let i = 0; i < parts; i++) text += alphabet[Math.floor(random() * alphabet.length)];
    const pieces = cut(encoder.encode(text), random);
    assert.deepEqual(fastPayloads(pieces), referencePayloads(pieces), JSON.stringify(text));
  }
});
