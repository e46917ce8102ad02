/**
 * The response builders (src/http/responses.ts) add headers one by one after construction rather than through a
 * headers record: held to the record form they replaced — same status, body, and header list (names, values,
 * order as Headers iterates them) — for the headers the routes pass, colliding names in other cases, and bad values.
 */
import assert from "node:assert/strict";
import { json, sse } from "../../src/http/responses.ts";

/** The builders as they were: one headers record in ResponseInit. */
const recordJson = (body: unknown, headers: Record<string, string> = {}, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const recordSse = (body: ReadableStream<Uint8Array>, headers: Record<string, string>) =>
  new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...headers,
    },
  });

const extras: Record<string, string>[] = [
  {},
  { "x-request-id": "abc123" },
  { "request-id": "req_1", "anthropic-version": "2023-06-01" },
  { "retry-after": "10", "x-request-id": "a" },
  { "content-type": "text/plain" },
  { "Content-Type": "text/html" },
  { "X-Request-Id": "upper", "x-request-id": "lower" },
  { "cache-control": "max-age=5" },
  { "x-accel-buffering": "yes", "x-two": " padded value  " },
  { "set-cookie": "a=1" },
  { "123": "numeric name", "x-a": "b" },
];

Deno.test("json(): the record form's status, body and headers, for every header set", async () => {
  for (const headers of extras) {
    for (const status of [200, 400, 503]) {
      const body = { error: { message: 'é "quoted"' }, n: status };
      const fast = json(body, headers, status);
      const record = recordJson(body, headers, status);
      assert.equal(fast.status, record.status);
      assert.deepEqual([...fast.headers], [...record.headers], JSON.stringify(headers));
      assert.equal(await fast.text(), await record.text());
    }
  }
  assert.deepEqual([...json({ ok: true }).headers], [["content-type", "application/json"]]);
});

Deno.test("sse(): the record form's headers and body, for every header set", async () => {
  for (const headers of extras) {
    const stream = () =>
      new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array([1, 2])), c.close()) });
    const fast = sse(stream(), headers);
    const record = recordSse(stream(), headers);
    assert.equal(fast.status, record.status);
    assert.deepEqual([...fast.headers], [...record.headers], JSON.stringify(headers));
    assert.deepEqual(new Uint8Array(await fast.arrayBuffer()), new Uint8Array(await record.arrayBuffer()));
  }
});

Deno.test("json() and sse(): a header value the record form refuses is refused", () => {
  const bad: Record<string, string>[] = [{ "x-request-id": "a\nb" }, { "bad name": "x" }, { "x-é": "x" }];
  for (const headers of bad) {
    assert.throws(() => recordJson({}, headers), TypeError);
    assert.throws(() => json({}, headers), TypeError);
    assert.throws(() => recordSse(new ReadableStream(), headers), TypeError);
    assert.throws(() => sse(new ReadableStream(), headers), TypeError);
  }
});
