/**
 * The Upstash store through outages of its REST endpoint: short ones cost no step (each is retried, and each script
 * recognises a repeat of itself, so a reply lost after the step ran never enqueues twice, loses a claim or appends
 * twice); long ones end in explicit StoreError("unavailable") errors; the store recovers when the service is back.
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import { StoreError } from "../../src/store/store.ts";
import { storeKeys } from "../../src/store/upstash/keys.ts";
import { newJob } from "./conformance.ts";
import { eventually, waitForBlockedClients, withBackend, worker } from "./upstash-backend.ts";

const text = (t: string): JobEvent => ({ type: "text", text: t });
const unavailable = (err: unknown) => err instanceof StoreError && err.code === "unavailable";

Deno.test("upstash: a step whose reply is lost is retried and takes effect exactly once", async () => {
  await withBackend(async (backend) => {
    const store = backend.store();
    const keys = storeKeys(backend.prefix);
    const job = newJob(Date.now());
    const w = worker("w-lost-01", { slots: 2, free: 2 });

    // enqueue: ran, reply lost, retried → queued once
    backend.bridge.dropReplies(1, job.id); // the step's arguments name the job
    await store.enqueue(job);
    assert.equal(await backend.redisReply("LLEN", keys.lane("chat")), 1);

    // claim: ran (job leased), reply lost, retried → the same job handed out, not left leased to no one
    backend.bridge.dropReplies(1, w.id);
    const claimed = await store.claim({ worker: w, lanes: ["chat"], activeJobs: [], max: 2, waitMs: 0 });
    assert.deepEqual(claimed.jobs.map((j) => j.id), [job.id]);

    // append: ran, reply lost, retried → one stream entry
    backend.bridge.dropReplies(1, "alpha-1");
    assert.deepEqual(await store.appendEvents(job.id, w.id, 0, [text("alpha-1"), text("b")]), {
      ok: true,
      cancelled: false,
      next: 2,
    });
    // the final batch too (the retry meets a finished job): ok, stored once
    backend.bridge.dropReplies(1, "omega-9");
    const end = await store.appendEvents(job.id, w.id, 2, [text("omega-9"), { type: "done", finishReason: "stop" }]);
    assert.equal(end.ok, true);
    assert.equal(await backend.redisReply("XLEN", keys.events(job.id)), 2);
    const read = await store.readEvents(job.id, "", 0);
    assert.deepEqual(read.events.map((e) => e.type === "text" ? e.text : e.type), ["alpha-1", "b", "omega-9", "done"]);
    assert.equal(read.state, "done");

    // counters: ran, reply lost, retried → added once
    backend.bridge.dropReplies(1, "requests-once");
    await store.addCounters({ "requests-once": 3 });
    assert.deepEqual(await store.readCounters(), { "requests-once": 3 });
    assert.equal(backend.bridge.droppedReplies, 5);
  });
});

Deno.test("upstash: an outage of a few seconds fails no step; a parked claim rides it out", async () => {
  await withBackend(async (backend) => {
    const store = backend.store();
    const job = newJob(Date.now());
    const parked = store.claim({ worker: worker("w-blip-01"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 8_000 });
    await waitForBlockedClients(backend, 1);
    await backend.bridge.pause(2_000);
    // Sent while the endpoint is down: retried until it is back.
    await store.enqueue(job);
    const claimed = await parked;
    assert.deepEqual(claimed.jobs.map((j) => j.id), [job.id]);
    assert.ok(store.retryCount > 0);
  });
});

Deno.test("upstash: Redis going away for longer gives explicit errors, and the store recovers", async () => {
  await withBackend(async (backend) => {
    // A short retry budget keeps the test short; the default (8 s) rides out outages up to 5 s.
    const store = backend.store({}, { retryBudgetMs: 300 });
    const other = backend.store({}, { retryBudgetMs: 300 });
    const lost = newJob(Date.now());
    await store.enqueue(lost);

    // Redis crashes: a worker parked in a claim and every step get explicit errors while it is down.
    const parkedAcross = assert.rejects(
      other.claim({ worker: worker("w-crash-01"), lanes: ["late"], activeJobs: [], max: 1, waitMs: 10_000 }),
      unavailable,
    );
    await waitForBlockedClients(backend, 1);
    await backend.redis.restart({
      whileDown: async () => {
        await parkedAcross;
        await assert.rejects(store.enqueue(newJob(Date.now())), unavailable);
        await assert.rejects(store.readEvents(lost.id, "", 0), unavailable);
      },
    });
    // It is back, empty (loaded scripts too: EVALSHA → NOSCRIPT → EVAL): the lost job is reported unknown.
    const read = await eventually(() => store.readEvents(lost.id, "", 0));
    assert.equal(read.state, "failed");
    assert.equal((read.events[0] as { code?: string }).code, "unknown_job");
    const kept = newJob(Date.now());
    await store.enqueue(kept);

    // The service unreachable for longer than the retry budget: explicit errors.
    await backend.bridge.pause(1_500);
    await assert.rejects(store.enqueue(newJob(Date.now())), unavailable);
    await assert.rejects(
      store.claim({ worker: worker("w-fault-01"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 }),
      unavailable,
    );

    await backend.bridge.available();
    const claimed = await eventually(() =>
      store.claim({ worker: worker("w-fault-01"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 })
    );
    assert.deepEqual(claimed.jobs.map((j) => j.id), [kept.id]);
  });
});
