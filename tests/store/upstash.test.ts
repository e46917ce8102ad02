/**
 * The Upstash store against a real redis-server behind the Upstash REST bridge: the shared conformance suite (two
 * store instances on one database play two router instances), then what only a shared, billed store has — command
 * counts, keys cleaned up, wake-ups and cancels across instances (outages: upstash-outages.test.ts).
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import type { StoreOptions } from "../../src/store/store.ts";
import { storeKeys } from "../../src/store/upstash/keys.ts";
import { newJob, storeConformance } from "./conformance.ts";
import { startBackend, waitForBlockedClients, withBackend, worker } from "./upstash-backend.ts";

storeConformance("upstash", async (options) => {
  const backend = await startBackend();
  return { store: backend.store(options), peer: backend.store(options), close: () => backend.close() };
});

// --- Upstash-specific -------------------------------------------------------------------------------------

Deno.test("upstash: a 500-event stream in 10 batches costs a bounded number of commands", async () => {
  await withBackend(async (backend) => {
    const router = backend.store(); // the instance the caller reads through
    const workerSide = backend.store(); // the instance the worker posts through
    const job = newJob(Date.now());
    await router.enqueue(job);
    const [claimed] = (await workerSide.claim({
      worker: worker("w-stream-1"),
      lanes: ["chat"],
      activeJobs: [],
      max: 1,
      waitMs: 0,
    })).jobs;
    assert.equal(claimed.id, job.id);

    const events: JobEvent[] = [
      { type: "start", model: "m", promptTokens: 5 },
      ...Array.from({ length: 497 }, (_, i): JobEvent => ({ type: "text", text: `t${i} ` })),
      { type: "usage", usage: { promptTokens: 5, completionTokens: 497, cachedTokens: 0 } },
      { type: "done", finishReason: "stop" },
    ];
    const routerBefore = router.commandCount;
    const workerBefore = workerSide.commandCount;
    const reader = (async () => {
      const received: JobEvent[] = [];
      let cursor = "";
      for (;;) {
        const read = await router.readEvents(job.id, cursor, 20_000);
        received.push(...read.events);
        cursor = read.cursor;
        if (read.state !== "queued" && read.state !== "running") return { received, state: read.state };
      }
    })();
    for (let seq = 0; seq < events.length; seq += 50) {
      const result = await workerSide.appendEvents(job.id, "w-stream-1", seq, events.slice(seq, seq + 50));
      assert.deepEqual(result, { ok: true, cancelled: false, next: Math.min(seq + 50, events.length) });
    }
    const { received, state } = await reader;
    assert.equal(state, "done");
    assert.deepEqual(received, events);
    const readerCommands = router.commandCount - routerBefore;
    const workerCommands = workerSide.commandCount - workerBefore;
    console.log(`500 events in 10 batches: worker ${workerCommands} commands, reader ${readerCommands} commands`);
    // One command per posted batch, plus one the first time the script meets this Redis server (NOSCRIPT → EVAL).
    assert.ok(workerCommands <= 11, `worker used ${workerCommands} commands for 10 batches`);
    assert.ok(
      readerCommands <= 12,
      `reader used ${readerCommands} commands (at most one per batch plus the first read)`,
    );
  });
});

Deno.test("upstash: a reader on the instance its worker posts through needs no Redis command per batch", async () => {
  await withBackend(async (backend) => {
    const store = backend.store();
    const job = newJob(Date.now());
    await store.enqueue(job);
    await store.claim({ worker: worker("w-local-1"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    await store.appendEvents(job.id, "w-local-1", 0, [{ type: "start", model: "m" }]); // loads the script
    const first = await store.readEvents(job.id, "", 0);
    const before = store.commandCount;
    const reader = (async () => {
      const received: JobEvent[] = [];
      let cursor = first.cursor;
      for (;;) {
        const read = await store.readEvents(job.id, cursor, 20_000);
        received.push(...read.events);
        cursor = read.cursor;
        if (read.state === "done") return received;
      }
    })();
    for (let seq = 1; seq <= 10; seq++) {
      const event: JobEvent = seq === 10 ? { type: "done", finishReason: "stop" } : { type: "text", text: `${seq}` };
      await store.appendEvents(job.id, "w-local-1", seq, [event]);
    }
    assert.equal((await reader).length, 10);
    const readerCommands = store.commandCount - before - 10; // minus the 10 appends
    console.log(`local reader: ${readerCommands} commands for 10 batches`);
    // 0 when every batch arrives within LOCAL_FIRST_MS of the previous one; a slower machine may fall back once.
    assert.ok(readerCommands <= 2, `local reader used ${readerCommands} commands`);
  });
});

Deno.test("upstash: an idle parked claim costs one command per blocking period", async () => {
  await withBackend(async (backend) => {
    // 2 s blocking periods stand in for the default 20 s ones: 6 s idle here is 60 s idle in production.
    const store = backend.store({}, { maxBlockMs: 2_000 });
    // The first call loads the script (EVALSHA → NOSCRIPT → EVAL, once per Redis server): not part of the cost.
    await store.claim({ worker: worker("w-idle-01"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    const before = store.commandCount;
    const result = await store.claim({
      worker: worker("w-idle-01"),
      lanes: ["chat"],
      activeJobs: [],
      max: 1,
      waitMs: 6_000,
    });
    assert.deepEqual(result.jobs, []);
    const used = store.commandCount - before;
    console.log(`idle claim of 6 s with 2 s blocks: ${used} commands (60 s with 20 s blocks: the same)`);
    assert.ok(used <= 4, `idle claim used ${used} commands`);
  });
});

Deno.test("upstash: a worker parked on instance B wakes when instance A enqueues", async () => {
  await withBackend(async (backend) => {
    const a = backend.store();
    const b = backend.store();
    const parked = b.claim({
      worker: worker("w-parked-1"),
      lanes: ["chat", "tool:x"],
      activeJobs: [],
      max: 1,
      waitMs: 15_000,
    });
    await waitForBlockedClients(backend, 1);
    const job = newJob(Date.now(), { lane: "tool:x" });
    await a.enqueue(job);
    assert.deepEqual((await parked).jobs.map((j) => j.id), [job.id]);
  });
});

Deno.test("upstash: a cancel on instance A reaches a reader and the worker on instance B", async () => {
  await withBackend(async (backend) => {
    const a = backend.store();
    const b = backend.store();
    const job = newJob(Date.now());
    await b.enqueue(job);
    await b.claim({ worker: worker("w-cancel-1"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    await b.appendEvents(job.id, "w-cancel-1", 0, [{ type: "text", text: "a" }]);
    const first = await b.readEvents(job.id, "", 0);
    const waiting = b.readEvents(job.id, first.cursor, 10_000);
    await waitForBlockedClients(backend, 1);
    await a.cancel(job.id, "caller_left");
    const read = await waiting;
    assert.equal(read.state, "cancelled");
    assert.equal((read.events[0] as { code?: string }).code, "caller_left");
    assert.deepEqual(await b.appendEvents(job.id, "w-cancel-1", 1, [{ type: "text", text: "b" }]), {
      ok: true,
      cancelled: true,
      next: 1,
    });
    const poll = await b.claim({
      worker: worker("w-cancel-1"),
      lanes: ["chat"],
      activeJobs: [job.id],
      max: 0,
      waitMs: 0,
    });
    assert.deepEqual(poll.cancelled, [job.id]);
  });
});

Deno.test("upstash: when the service refuses blocking commands, waits fall back to polling", async () => {
  await withBackend(async (backend) => {
    // A real refusal: Redis's ACL denies BLPOP and XREAD to the bridge's user (scripts still run).
    await backend.redisCommand("ACL", "SETUSER", "default", "-blpop", "-xread");
    const a = backend.store();
    const b = backend.store();
    const job = newJob(Date.now());
    const parked = b.claim({ worker: worker("w-poll-001"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 10_000 });
    await a.enqueue(job); // through the other instance: no in-process wake-up for b
    assert.deepEqual((await parked).jobs.map((j) => j.id), [job.id]);

    const first = await a.readEvents(job.id, "", 0);
    const reading = a.readEvents(job.id, first.cursor, 10_000);
    await b.appendEvents(job.id, "w-poll-001", 0, [{ type: "text", text: "polled" }]);
    assert.deepEqual((await reading).events, [{ type: "text", text: "polled" }]);
  });
});

Deno.test("upstash: nothing is left in Redis once jobs finish and their TTLs pass", async () => {
  await withBackend(async (backend) => {
    let clock = Date.now();
    const options: Partial<StoreOptions> = { finishedTtlMs: 200, workerTtlMs: 300, now: () => clock };
    const store = backend.store(options);
    const w = worker("w-clean-01", { cachedConversations: ["conv-a"] });
    const done = newJob(clock, { conversationKey: "conv-a" });
    const cancelled = newJob(clock);
    const requeuedThenDone = newJob(clock);
    for (const job of [done, cancelled, requeuedThenDone]) await store.enqueue(job);
    await store.claim({ worker: w, lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    await store.appendEvents(done.id, w.id, 0, [{ type: "text", text: "x" }, { type: "done", finishReason: "stop" }]);
    await store.cancel(cancelled.id, "caller_left");
    await store.claim({ worker: w, lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    await store.appendEvents(requeuedThenDone.id, w.id, 0, [{ type: "error", message: "oom", retryable: true }]);
    await store.claim({ worker: w, lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    await store.appendEvents(requeuedThenDone.id, w.id, 0, [{ type: "done", finishReason: "stop" }]);
    await store.putVerifiedKey("digest-1", "api", 200);
    await store.readEvents(done.id, "", 0);
    assert.ok((await backend.keys()).length > 0);

    // Real time passes for the Redis TTLs, the store's clock for its own bookkeeping; reap sweeps both.
    await new Promise((r) => setTimeout(r, 1_500));
    clock += 1_500;
    await store.reap();
    const left = await backend.keys();
    assert.deepEqual(left, [], `keys left: ${left.join(", ")}`);
  });
});

Deno.test("upstash: reap is one command when there is nothing to do, and one instance sweeps at a time", async () => {
  await withBackend(async (backend) => {
    const a = backend.store();
    const b = backend.store();
    await a.reap(); // loads the script (EVALSHA → NOSCRIPT → EVAL: once per Redis server)
    const before = a.commandCount;
    assert.deepEqual(await a.reap(), { requeued: 0, failed: 0, cancelled: 0, timedOut: 0 });
    assert.equal(a.commandCount - before, 1);

    const job = newJob(Date.now() - 400_000); // already past its deadline
    await b.enqueue(job);
    // Another instance is mid-sweep (holds the lock): this reap leaves the job alone.
    const lock = storeKeys(backend.prefix).reapLock;
    await backend.redisCommand("SET", lock, "another-instance", "PX", "10000");
    assert.deepEqual(await a.reap(), { requeued: 0, failed: 0, cancelled: 0, timedOut: 0 });
    await backend.redisCommand("DEL", lock);
    assert.equal((await a.reap()).timedOut, 1);
    assert.equal((await b.readEvents(job.id, "", 0)).state, "cancelled");
  });
});
