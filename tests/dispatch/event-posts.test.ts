/**
 * How many posts a job's events cost (each is an HTTP request to the router and, on Upstash, a billed command): a
 * streaming caller gets its first token posted on its own (time to first token); a caller that waits for the whole
 * answer says so in the job (`stream: false`), and a short answer then reaches the router in one post. Counted at
 * the real embedded store behind the real router, worker loop and protocol.
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

const isOutput = (e: JobEvent) => e.type === "text" || e.type === "reasoning" || e.type === "tool_call";
const isTerminal = (e: JobEvent) => e.type === "done" || e.type === "error";

Deno.test("a non-streaming answer arrives in one post; a streaming one posts its first token on its own", async () => {
  const store = new EmbeddedStore({ leaseMs: 30_000 });
  const posts: JobEvent[][] = [];
  const append = store.appendEvents.bind(store);
  store.appendEvents = (jobId, workerId, seq, events) => {
    posts.push(events);
    return append(jobId, workerId, seq, events);
  };
  const target = await startDenoRouter({}, { store });
  const engine = new ScriptedEngine();
  const worker = startWorker(target, engine, { key: target.keys.admin });
  const ask = async (stream: boolean) => {
    posts.length = 0;
    const response = await fetch(`${target.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${target.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", stream, messages: [{ role: "user", content: "echo one two three" }] }),
    });
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.match(body, /three/);
    return posts.filter((events) => events.some(isOutput));
  };
  try {
    const whole = await ask(false);
    assert.equal(engine.received.at(-1)?.stream, false, "the job says its caller waits for the whole answer");
    assert.equal(whole.length, 1, "one post carries the whole answer");
    assert.ok(whole[0].some(isTerminal));

    const streamed = await ask(true);
    assert.equal(engine.received.at(-1)?.stream, undefined, "a streaming caller's job carries no hint");
    const first = streamed[0];
    assert.ok(!first.some(isTerminal), "the first token went out before the answer ended");
    assert.equal(first.filter(isOutput).length, 1, "on its own");
  } finally {
    await worker.stop();
    await target.close();
    await store.close();
  }
});
