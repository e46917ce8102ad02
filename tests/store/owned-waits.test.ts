/**
 * The waiting rule of the store (docs/store.md, "Who owns a wait"): every waiting request owns its wait
 * and in-process wake-ups may only end a wait sooner. Two router app instances share ONE Upstash store object, as
 * requests of one Workers isolate do, with in-process wake-ups switched off entirely; one instance is stopped while
 * its worker's poll is parked. Every request on the other instance still completes, exactly, by its own waits.
 * And a waiter's wait is its own: its own timer ends it when no wake-up comes, a wake-up only ends it sooner, and a
 * waiter that stopped (a Workers request whose client left runs no timers) does not stay parked for good.
 */
import assert from "node:assert/strict";
import { Wakeup } from "../../src/store/wakeup.ts";
import { eventually, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { streamCall, uniqueWords } from "../reliability/caller.ts";
import { waitForBlockedClients, withBackend } from "./upstash-backend.ts";

Deno.test("owned waits: with no in-process wake-ups and one app instance stopped mid-wait, requests complete", async () => {
  await withBackend(async (backend) => {
    const store = backend.store({}, { wakeups: "off", lazySweeps: true });
    const a = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" }, { store });
    const b = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" }, { store });
    const onA = startWorker(a, new ScriptedEngine({ slots: 2 }), { key: a.keys.admin, pollWaitMs: 60_000 });
    let onB: ReturnType<typeof startWorker> | undefined;
    try {
      await waitForBlockedClients(backend, 1); // the worker on A is parked in its poll
      await a.close(); // instance A stops mid-wait
      onB = startWorker(b, new ScriptedEngine({ slots: 4 }), { key: b.keys.admin, pollWaitMs: 60_000 });
      await eventually(async () => (await (await fetch(`${b.url}/health`)).json()).workers?.ready >= 1);
      const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        streamCall({
          url: b.url,
          key: b.keys.api,
          flavour: i % 2 ? "anthropic" : "openai",
          words: uniqueWords("owned", i),
          deadlineMs: 30_000,
        })));
      assert.deepEqual(outcomes.map((o) => o.kind), Array(6).fill("completed"));
    } finally {
      await onB?.stop();
      await onA.stop();
      await b.close();
    }
  });
});

Deno.test("owned waits: a wake-up only ends a wait sooner; its own timer ends it otherwise", async () => {
  const wakeup = new Wakeup("direct");
  const woken = wakeup.wait(["job:1"], 5_000);
  wakeup.notify("job:1");
  assert.equal(wakeup.size, 0, "a woken waiter leaves the table at once");
  assert.equal(await woken, true);
  assert.equal(await wakeup.wait(["job:2"], 30), false, "no wake-up: its own timer ends the wait");
  assert.equal(wakeup.size, 0);
  const off = new Wakeup("off");
  const never = off.wait(["job:3"], 50);
  off.notify("job:3");
  assert.equal(await never, false);
});

Deno.test("owned waits: a waiter whose request stopped (its timer never ran) leaves the table", () => {
  // The store's clock jumps past the waiter's own deadline without its timer running, as on Workers for a request
  // whose client left.
  let skewMs = 0;
  const wakeup = new Wakeup("direct", () => performance.now() + skewMs);
  const stopped = new AbortController();
  void wakeup.wait(["job:stopped"], 1_000, stopped.signal);
  skewMs = 10_000;
  const live = Array.from({ length: 300 }, (_, i) => {
    const abort = new AbortController();
    void wakeup.wait([`job:live-${i}`], 60_000, abort.signal);
    return abort;
  });
  assert.equal(wakeup.size, 300, "the stopped request's waiter was dropped; live waiters stay");
  for (const abort of [stopped, ...live]) abort.abort();
  assert.equal(wakeup.size, 0);
});
