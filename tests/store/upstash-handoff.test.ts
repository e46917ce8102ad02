/**
 * Hand-offs on the Upstash store (src/store/upstash/lua/enqueue.ts): a worker whose poll waits, with a free slot and
 * nothing to claim, is parked on its lanes, and the next enqueue there hands it the job directly — leased to it and
 * pushed on its hand-off list, which its parked BLPOP takes — with no claim. Against a real redis-server behind the
 * REST bridge, through two store instances (the caller's and the worker's, as two routers or isolates).
 */
import assert from "node:assert/strict";
import type { WorkerInfo } from "../../src/protocol/worker-protocol.ts";
import type { StoreOptions } from "../../src/store/store.ts";
import { storeKeys } from "../../src/store/upstash/keys.ts";
import type { UpstashStore } from "../../src/store/upstash/store.ts";
import { eventually, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { newJob } from "./conformance.ts";
import { type Backend, waitForBlockedClients, withBackend, worker } from "./upstash-backend.ts";

const done = [{ type: "text" as const, text: "ok" }, { type: "done" as const, finishReason: "stop" as const }];

/** A poll that waits (so its worker is parked while it gets nothing). */
function poll(store: UpstashStore, w: WorkerInfo, waitMs = 10_000, activeJobs: string[] = []) {
  return store.claim({ worker: w, lanes: ["chat"], activeJobs, max: 1, waitMs });
}

async function jobField(backend: Backend, id: string, field: string) {
  return await backend.redisReply("HGET", storeKeys(backend.prefix).job(id), field);
}

function stores(backend: Backend, options: Partial<StoreOptions> = {}) {
  return { caller: backend.store(options, { wakeups: "off" }), workerSide: backend.store(options, { wakeups: "off" }) };
}

Deno.test("upstash hand-off: a parked worker's poll gets the next job with no claim, request after request", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = stores(backend);
    const w = worker("w-hand-001", { slots: 1, free: 1 });
    // First poll: a claim (nothing queued, so it parks the worker), then its BLPOP.
    let polling = poll(workerSide, w);
    await waitForBlockedClients(backend, 1);
    const perRequest: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = caller.commandCount + workerSide.commandCount;
      const job = newJob(Date.now());
      await caller.enqueue(job);
      const { jobs } = await polling;
      assert.deepEqual(jobs.map((j) => j.id), [job.id]);
      assert.equal(jobs[0].attempt, 1);
      assert.ok(jobs[0].deadlineMs > 0);
      assert.equal(await jobField(backend, job.id, "worker"), w.id);
      assert.equal(await jobField(backend, job.id, "state"), "running");
      // The finished job parks the worker again; its next poll waits first (nothing left behind), then BLPOPs.
      await workerSide.appendEvents(job.id, w.id, 0, done);
      assert.equal((await caller.readEvents(job.id, "", 0)).state, "done");
      polling = poll(workerSide, w);
      await waitForBlockedClients(backend, 1);
      // enqueue, the post, the next poll's BLPOP (which takes the next job): the read above aside, no claim
      perRequest.push(caller.commandCount + workerSide.commandCount - before - 1);
    }
    // (the first request also loads the scripts)
    assert.deepEqual(perRequest.slice(1), [3, 3, 3, 3], `commands per request: ${perRequest}`);
    assert.deepEqual(await backend.redisReply("LLEN", storeKeys(backend.prefix).lane("chat")), 0);
    assert.deepEqual(await backend.redisReply("EXISTS", storeKeys(backend.prefix).wake("chat")), 0, "no wake token");
    await workerSide.close(); // ends the last poll
  });
});

Deno.test("upstash hand-off: only a waiting worker with a free slot and nothing queued is handed a job", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = stores(backend);
    const keys = storeKeys(backend.prefix);
    // A poll that answers at once (waitMs 0) parks nobody: the job is queued for whoever claims.
    await workerSide.claim({ worker: worker("w-hand-010"), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 });
    const queued = newJob(Date.now());
    await caller.enqueue(queued);
    assert.equal(await jobField(backend, queued.id, "state"), "queued");
    // A worker with no free slot (max 0, as a busy worker's heartbeat poll) is not parked either.
    await workerSide.claim({
      worker: worker("w-hand-011", { free: 0 }),
      lanes: ["chat"],
      activeJobs: [],
      max: 0,
      waitMs: 60,
    });
    const behind = newJob(Date.now());
    await caller.enqueue(behind);
    assert.equal(await jobField(backend, behind.id, "state"), "queued");
    // A waiting worker finds the queued jobs by claiming, first in, first out, and is not parked while any is left.
    const w = worker("w-hand-012", { slots: 1, free: 1 });
    assert.deepEqual((await poll(workerSide, w, 60)).jobs.map((j) => j.id), [queued.id]);
    assert.equal(await backend.redisReply("ZSCORE", keys.parked("chat"), w.id), null);
    const third = newJob(Date.now());
    await caller.enqueue(third);
    assert.equal(await jobField(backend, third.id, "state"), "queued", "queued behind the job still waiting");
  });
});

Deno.test("upstash hand-off: the parked holder of a conversation gets its next job", async () => {
  await withBackend(async (backend) => {
    let clock = Date.now();
    const { caller, workerSide } = stores(backend, { now: () => clock });
    const a = worker("w-hand-020", { slots: 1, free: 1 });
    const b = worker("w-hand-021", { slots: 1, free: 1 });
    await poll(workerSide, a, 60); // parked at t
    clock += 1_000;
    await poll(workerSide, b, 60); // parked at t + 1 s: the most recent
    const first = newJob(clock, { conversationKey: "conv-h" });
    await caller.enqueue(first);
    assert.equal(await jobField(backend, first.id, "worker"), b.id, "the worker parked most recently");
    const [taken] = (await poll(workerSide, b, 60)).jobs; // its poll takes it from its hand-off list
    assert.equal(taken.id, first.id);
    await workerSide.appendEvents(first.id, b.id, 0, done); // b holds conv-h, and is parked again
    clock += 1_000;
    await poll(caller, a, 60); // through an instance that does not know a: it claims first, parking a after b
    const second = newJob(clock, { conversationKey: "conv-h" });
    await caller.enqueue(second);
    assert.equal(await jobField(backend, second.id, "worker"), b.id, "the holder, though a parked later");
    const other = newJob(clock);
    await caller.enqueue(other);
    assert.equal(await jobField(backend, other.id, "worker"), a.id, "one hand-off per parking: b is busy now");
  });
});

Deno.test("upstash hand-off: a job cancelled or requeued before its worker took it never reaches that worker", async () => {
  await withBackend(async (backend) => {
    let clock = Date.now();
    const { caller, workerSide } = stores(backend, { now: () => clock });
    const keys = storeKeys(backend.prefix);
    const w = worker("w-hand-030", { slots: 1, free: 1, postsProgress: true });
    await poll(workerSide, w, 60);
    const cancelled = newJob(clock);
    await caller.enqueue(cancelled);
    assert.equal(await backend.redisReply("LLEN", keys.handoff(w.id)), 1);
    await caller.cancel(cancelled.id, "caller_left");
    assert.equal(await backend.redisReply("LLEN", keys.handoff(w.id)), 0);
    assert.deepEqual((await poll(workerSide, w, 60)).jobs, []);
    await poll(caller, w, 60); // a claim parks it again (the poll above waited first: no claim)

    // The worker died parked: its job's caller sees no progress and requeues it (docs/store.md, "Lost wake-ups").
    const orphan = newJob(clock);
    await caller.enqueue(orphan);
    assert.equal(await jobField(backend, orphan.id, "worker"), w.id);
    clock += 5_000; // past the 4 s a worker that posts progress may take to post
    // The caller waits as JobRun does; its recovery check is due 2 s after it began.
    for (let i = 0; i < 10 && await jobField(backend, orphan.id, "state") !== "queued"; i++) {
      await caller.readEvents(orphan.id, "", 1_000);
    }
    assert.equal(await jobField(backend, orphan.id, "state"), "queued");
    assert.equal(await backend.redisReply("LLEN", keys.handoff(w.id)), 0, "withdrawn from the dead worker");
    const [taken] = (await workerSide.claim({
      worker: worker("w-hand-031"),
      lanes: ["chat"],
      activeJobs: [],
      max: 1,
      waitMs: 0,
    })).jobs;
    assert.equal(taken.id, orphan.id);
    assert.equal(taken.attempt, 2);
  });
});

Deno.test("upstash hand-off: a stopping worker's last poll puts back a job handed to it", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = stores(backend);
    const w = worker("w-hand-040", { slots: 1, free: 1 });
    await poll(workerSide, w, 60);
    const job = newJob(Date.now());
    await caller.enqueue(job);
    assert.equal(await jobField(backend, job.id, "worker"), w.id);
    // What a worker sends when it stops (workers/common/worker-loop.ts): no free slot, no wait.
    const last = await workerSide.claim({
      worker: { ...w, slots: 0, free: 0 },
      lanes: ["chat"],
      activeJobs: [],
      max: 0,
      waitMs: 0,
    });
    assert.deepEqual(last.jobs, []);
    assert.equal(await jobField(backend, job.id, "state"), "queued");
    const next = newJob(Date.now());
    await caller.enqueue(next);
    assert.equal(await jobField(backend, next.id, "state"), "queued", "the stopped worker is no longer parked");
    const other = worker("w-hand-041", { slots: 2, free: 2 });
    const { jobs } = await workerSide.claim({ worker: other, lanes: ["chat"], activeJobs: [], max: 2, waitMs: 0 });
    assert.deepEqual(jobs.map((j) => j.id), [job.id, next.id]);
  });
});

Deno.test("upstash hand-off: a worker that stops cleanly is no longer parked, so no job is handed to it", async () => {
  await withBackend(async (backend) => {
    const store = backend.store({}, { lazySweeps: true });
    const router = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" }, { store });
    try {
      const parked = async (id: string) => {
        for (const key of (await backend.keys()).filter((k) => k.includes(":parked:"))) {
          if (await backend.redisReply("ZSCORE", key, id) !== null) return true;
        }
        return false;
      };
      const first = startWorker(router, new ScriptedEngine({ slots: 1 }), {
        key: router.keys.admin,
        pollWaitMs: 30_000,
      });
      try {
        await eventually(() => parked(first.loop.id), 10_000, "the worker parked");
      } finally {
        await first.stop();
      }
      assert.equal(await parked(first.loop.id), false, "its last poll unparked it");
      const second = startWorker(router, new ScriptedEngine({ slots: 1 }), { key: router.keys.admin });
      try {
        const response = await fetch(`${router.url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "words 3" }] }),
        });
        assert.equal(response.status, 200, await response.clone().text());
        const body = await response.json();
        assert.equal(body.choices[0].message.content, "w0 w1 w2 ");
      } finally {
        await second.stop();
      }
    } finally {
      await router.close();
    }
  });
});
