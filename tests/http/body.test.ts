/** Request bodies: size and nesting limits, and a deadline for bodies that trickle in (slow-loris). */
import assert from "node:assert/strict";
import { readJsonBody, shareBodyDeadlines } from "../../src/http/body.ts";
import { ApiError } from "../../src/http/errors.ts";

const post = (body: BodyInit) => new Request("http://x/", { method: "POST", body });
const status = (n: number) => (err: unknown) => err instanceof ApiError && err.status === n;

Deno.test("a body within the limits parses; too large, too deep, not JSON or not UTF-8 are refused", async () => {
  assert.deepEqual(await readJsonBody(post('{"a":[1,2]}'), 100), { a: [1, 2] });
  await assert.rejects(readJsonBody(post("x".repeat(101)), 100), status(413));
  await assert.rejects(readJsonBody(post("[".repeat(65) + "]".repeat(65)), 1_000), status(400));
  assert.deepEqual(await readJsonBody(post('"[[[[[["'), 100), "[[[[[[", "brackets inside strings do not count");
  await assert.rejects(readJsonBody(post("{nope"), 100), status(400));
  await assert.rejects(readJsonBody(post(new Uint8Array([0x7b, 0xff, 0x7d])), 100), status(400));
  // A body of declared length is read whole: one that holds more than it declares is still refused.
  const understated = new Request("http://x/", {
    method: "POST",
    body: JSON.stringify({ a: "x".repeat(200) }),
    headers: { "content-length": "10" },
  });
  await assert.rejects(readJsonBody(understated, 100), status(413));
});

Deno.test("a body that stops arriving is refused with a 408 at the deadline", async () => {
  let cancelled = false;
  const stalled = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"a":'));
    },
    cancel() {
      cancelled = true;
    },
  });
  await assert.rejects(readJsonBody(post(stalled), 1_000, 100), status(408));
  assert.equal(cancelled, true, "the stalled body is released");
});

Deno.test("with one sweeping timer for every body (Deno's entry), a body that stops arriving is still refused", async () => {
  shareBodyDeadlines();
  try {
    let cancelled = false;
    const stalled = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"a":'));
      },
      cancel() {
        cancelled = true;
      },
    });
    const complete = readJsonBody(post('{"a":1}'), 1_000, 100);
    await assert.rejects(readJsonBody(post(stalled), 1_000, 100), status(408));
    assert.equal(cancelled, true, "the stalled body is released");
    assert.deepEqual(await complete, { a: 1 }, "a body read in time is not touched by the sweep");
  } finally {
    shareBodyDeadlines(false);
  }
});

Deno.test("through a real server: a body of declared length is read whole, and one that stalls gets a 408", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    try {
      return Response.json({ got: await readJsonBody(request, 1_000, 200) });
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 500;
      return new Response(err instanceof Error ? err.message : "?", { status });
    }
  });
  const url = `http://127.0.0.1:${server.addr.port}/`;
  try {
    const ok = await fetch(url, { method: "POST", body: '{"a":[1,2]}' });
    assert.deepEqual(await ok.json(), { got: { a: [1, 2] } });
    const big = await fetch(url, { method: "POST", body: "x".repeat(1_001) });
    assert.equal(big.status, 413);
    await big.body?.cancel();
    // Declares 50 bytes, sends 5 and stops.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(
      new TextEncoder().encode('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{"a":'),
    );
    const reply = new Uint8Array(512);
    const n = await conn.read(reply);
    assert.match(new TextDecoder().decode(reply.subarray(0, n ?? 0)), /^HTTP\/1\.1 408/);
    conn.close();
  } finally {
    await server.shutdown();
  }
});
