/**
 * The events post's fast path (src/dispatch/events-post.ts) against the protocol's zod schema: whatever it accepts,
 * zod accepts too and returns the same value with the same key order; whatever zod refuses, the fast path leaves to
 * zod (so the refusal and its message are zod's). Posts as workers send them, hand-picked edge cases, and random
 * mutations of both — so a bound added to the schema later and not to the fast path shows up here.
 */
import assert from "node:assert/strict";
import { parseEventsPostFast } from "../../src/dispatch/events-post.ts";
import { EventsRequest } from "../../src/protocol/worker-protocol.ts";

const envelope = { workerId: "gpu-7d2f0c1e", leaseToken: `lt1.1.a.${"x".repeat(43)}`, seq: 0 };
const typical = [
  { type: "progress", phase: "prefill" },
  { type: "start", model: "Qwen3-0.6B", promptTokens: 12 },
  { type: "reasoning", text: "hm", tokens: [11, 12] },
  { type: "text", text: " Hello" },
  { type: "text", text: "!", tokens: [0] },
  { type: "tool_call", index: 0, id: "call_1", name: "get_weather" },
  { type: "tool_args", index: 0, delta: '{"city":' },
  { type: "usage", usage: { promptTokens: 12, completionTokens: 3 } },
  { type: "done", finishReason: "stop" },
];
const edgeEvents: unknown[] = [
  { text: "swapped", type: "text" },
  { type: "text", text: "extra", extra: 1 },
  { type: "text", text: 1 },
  { type: "text" },
  { type: "text", text: "x", tokens: [-1] },
  { type: "text", text: "x", tokens: [1.5] },
  { type: "text", text: "x", tokens: null },
  { type: "text", text: "x", tokens: [2 ** 53] },
  { type: "reasoning", text: "" },
  { type: "tool_args", index: -1, delta: "x" },
  { type: "tool_args", delta: "x", index: 0 },
  { type: "tool_args", index: 0, delta: 5 },
  { type: "tool_args", index: 0, delta: "x", more: true },
  { type: "error", message: "boom" },
  { type: "nope" },
  ["text", "x"],
  null,
  "text",
  JSON.parse('{"type":"text","text":"a","__proto__":{"x":1}}'),
];
const edgeBodies: unknown[] = [
  { ...envelope, events: typical },
  { ...envelope, seq: -1, events: [] },
  { ...envelope, seq: 1.5, events: [] },
  { ...envelope, seq: "0", events: [] },
  { ...envelope, workerId: "w".repeat(81), events: [] },
  { ...envelope, leaseToken: "t".repeat(201), events: [] },
  { ...envelope, events: {} },
  { ...envelope, extra: true, events: [] },
  { workerId: "w", seq: 0, events: [] },
  { ...envelope, events: Array.from({ length: 10_001 }, () => ({ type: "text", text: "x" })) },
  null,
  [],
  "events",
  ...edgeEvents.map((event) => ({ ...envelope, events: [event] })),
];

function assertSameAsZod(body: unknown): void {
  const fast = parseEventsPostFast(body);
  const zod = EventsRequest.safeParse(body);
  if (fast === undefined) return; // left to zod: whatever it says is the answer
  assert.ok(zod.success, `fast path accepted what zod refuses: ${JSON.stringify(body)?.slice(0, 200)}`);
  assert.deepEqual(fast, zod.data);
  assert.equal(JSON.stringify(fast), JSON.stringify(zod.data));
}

Deno.test("the events post's fast path accepts only what zod accepts, as zod returns it", () => {
  for (const body of edgeBodies) assertSameAsZod(body);
  // Posts as workers send them do take the fast path (otherwise the test above proves nothing).
  assert.notEqual(parseEventsPostFast({ ...envelope, events: typical }), undefined);
  assert.equal(parseEventsPostFast({ ...envelope, events: [{ type: "text", text: 1 }] }), undefined);
});

Deno.test("random mutations of posts: the fast path never disagrees with zod", () => {
  let seed = 20;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const values = [0, -1, 1.5, 2 ** 53, "", "x", null, true, [], {}, [1, 2], "text", "tool_args", "reasoning"];
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)];
  for (let round = 0; round < 3_000; round++) {
    const events = structuredClone(typical.slice(0, 1 + Math.floor(random() * typical.length)));
    const event = pick(events) as Record<string, unknown>;
    const keys = Object.keys(event);
    const roll = random();
    if (roll < 0.4) event[pick(keys)] = pick(values);
    else if (roll < 0.6) delete event[pick(keys)];
    else if (roll < 0.8) event[pick(["extra", "tokens", "index", "delta", "text"])] = pick(values);
    else event.type = pick(["text", "reasoning", "tool_args", "start", "done"]);
    const body: Record<string, unknown> = { ...envelope, events };
    if (random() < 0.1) body[pick(["seq", "workerId", "leaseToken"])] = pick(values);
    assertSameAsZod(body);
  }
});
