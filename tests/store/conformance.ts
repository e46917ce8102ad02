/**
 * The store conformance suite: the JobStore semantics (src/store/store.ts) as tests, run against every
 * implementation (tests/store/embedded.test.ts, tests/store/upstash.test.ts). Time-dependent steps (leases,
 * deadlines, caller liveness) use an injected clock that the tests advance; nothing sleeps on a real timer except
 * the short long-poll waits whose wake-up is the point of the test.
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import type { WorkerInfo } from "../../src/protocol/worker-protocol.ts";
import { type JobStore, type NewJob, StoreError, type StoreOptions } from "../../src/store/store.ts";

export class TestClock {
  constructor(public t = 1_700_000_000_000) {}
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface StoreFixture {
  store: JobStore;
  /** A second handle on the same shared state (another router instance); the same object for the embedded store. */
  peer: JobStore;
  close(): Promise<void>;
}

export type MakeStore = (options: Partial<StoreOptions>) => Promise<StoreFixture>;

const LEASE = 10_000;
const OPTIONS = (clock: TestClock): Partial<StoreOptions> => ({
  leaseMs: LEASE,
  callerTimeoutMs: 20_000,
  workerTtlMs: 30_000,
  finishedTtlMs: 5_000,
  maxQueued: 5,
  affinityWaitMs: 2_000,
  now: clock.now,
});

let counter = 0;
/** A chat job whose deadlines count from `now` (the store's clock), with a unique id. */
export function newJob(now: number, over: Partial<NewJob> = {}): NewJob {
  const id = `job-${Date.now().toString(36)}-${++counter}`;
  return {
    id,
    lane: "chat",
    payload: {
      id,
      kind: "chat",
      mode: "generate",
      request: {
        requestedModel: "m",
        messages: [{ role: "user", content: [{ type: "text", text: `hi ${counter}` }] }],
        tools: [],
        toolChoice: "auto",
        stop: [],
      },
    },
    deadlineAt: now + 300_000,
    queueDeadlineAt: now + 60_000,
    ...over,
  };
}

function worker(id: string, over: Partial<WorkerInfo> = {}): WorkerInfo {
  return { id, kind: "gpu", slots: 2, free: 2, ...over };
}

const text = (t: string): JobEvent => ({ type: "text", text: t });
const done: JobEvent = { type: "done", finishReason: "stop" };

export function storeConformance(name: string, make: MakeStore): void {
  const test = (title: string, fn: (f: StoreFixture, clock: TestClock) => Promise<void>) =>
    Deno.test(`${name} conformance: ${title}`, async () => {
      const clock = new TestClock();
      const fixture = await make(OPTIONS(clock));
      try {
        await fn(fixture, clock);
      } finally {
        await fixture.close();
      }
    });

  const claimOne = async (store: JobStore, w: WorkerInfo, activeJobs: string[] = [], waitMs = 0) =>
    await store.claim({ worker: w, lanes: ["chat"], activeJobs, max: 1, waitMs });

  test("jobs are claimed in FIFO order, at most `max` at a time", async ({ store }, clock) => {
    const jobs = [newJob(clock.t), newJob(clock.t), newJob(clock.t)];
    for (const job of jobs) await store.enqueue(job);
    const first = await store.claim({ worker: worker("w-000001"), lanes: ["chat"], activeJobs: [], max: 2, waitMs: 0 });
    assert.deepEqual(first.jobs.map((j) => j.id), [jobs[0].id, jobs[1].id]);
    assert.equal(first.jobs[0].attempt, 1);
    assert.ok(first.jobs[0].deadlineMs > 0);
    const second = await claimOne(store, worker("w-000002"));
    assert.deepEqual(second.jobs.map((j) => j.id), [jobs[2].id]);
    assert.deepEqual((await claimOne(store, worker("w-000003"))).jobs, []);
  });

  test("a worker claims only from the lanes it serves", async ({ store }, clock) => {
    const toolJob = newJob(clock.t, { lane: "tool:web_search" });
    await store.enqueue(toolJob);
    assert.deepEqual((await claimOne(store, worker("w-gpu-0001"))).jobs, []);
    const got = await store.claim({
      worker: worker("w-tools-001", { kind: "tools" }),
      lanes: ["tool:web_search"],
      activeJobs: [],
      max: 4,
      waitMs: 0,
    });
    assert.deepEqual(got.jobs.map((j) => j.id), [toolJob.id]);
  });

  test("a parked claim wakes when a job arrives (on another instance too)", async ({ store, peer }, clock) => {
    const job = newJob(clock.t);
    const waiting = claimOne(store, worker("w-000001"), [], 10_000);
    await new Promise((r) => setTimeout(r, 50));
    await peer.enqueue(job);
    const got = await waiting;
    assert.deepEqual(got.jobs.map((j) => j.id), [job.id]);
  });

  test("a parked claim returns empty when its wait ends or its signal aborts", async ({ store }) => {
    assert.deepEqual((await claimOne(store, worker("w-000001"), [], 100)).jobs, []);
    const controller = new AbortController();
    const waiting = store.claim({
      worker: worker("w-000002"),
      lanes: ["chat"],
      activeJobs: [],
      max: 1,
      waitMs: 10_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    assert.deepEqual((await waiting).jobs, []);
  });

  test("events are appended by the lease holder only, idempotently by seq", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    assert.deepEqual(await store.appendEvents("no-such-job", "w-000001", 0, [text("x")]), {
      ok: false,
      reason: "unknown_job",
    });
    assert.equal((await store.appendEvents(job.id, "w-intruder", 0, [text("x")])).ok, false);
    assert.deepEqual(await store.appendEvents(job.id, "w-000001", 0, [text("a"), text("b")]), {
      ok: true,
      cancelled: false,
      next: 2,
    });
    // A retried post of the same batch, and one that overlaps it, add only what is new.
    assert.deepEqual(await store.appendEvents(job.id, "w-000001", 0, [text("a"), text("b")]), {
      ok: true,
      cancelled: false,
      next: 2,
    });
    assert.deepEqual(await store.appendEvents(job.id, "w-000001", 1, [text("b"), text("c")]), {
      ok: true,
      cancelled: false,
      next: 3,
    });
    const gap = await store.appendEvents(job.id, "w-000001", 7, [text("z")]);
    assert.equal(gap.ok, false);
    assert.equal(!gap.ok && gap.reason, "seq_gap");
    await store.appendEvents(job.id, "w-000001", 3, [done]);
    const read = await store.readEvents(job.id, "", 0);
    assert.deepEqual(read.events, [text("a"), text("b"), text("c"), done]);
    assert.equal(read.state, "done");
    // After the end, the worker holds no lease on it.
    assert.equal((await store.appendEvents(job.id, "w-000001", 4, [text("late")])).ok, false);
  });

  test("a reader gets events in order across reads and waits for new ones", async ({ store, peer }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    await store.appendEvents(job.id, "w-000001", 0, [text("a")]);
    const first = await peer.readEvents(job.id, "", 1_000);
    assert.deepEqual(first.events, [text("a")]);
    assert.equal(first.state, "running");
    const waiting = peer.readEvents(job.id, first.cursor, 10_000);
    await new Promise((r) => setTimeout(r, 50));
    await store.appendEvents(job.id, "w-000001", 1, [text("b"), done]);
    const second = await waiting;
    assert.deepEqual(second.events.slice(0, 1), [text("b")]);
    const rest = second.state === "done" ? second : await peer.readEvents(job.id, second.cursor, 1_000);
    const all = [...first.events, ...second.events, ...(rest === second ? [] : rest.events)];
    assert.deepEqual(all, [text("a"), text("b"), done]);
    const empty = await peer.readEvents(job.id, rest.cursor, 100);
    assert.deepEqual(empty.events, []);
    assert.equal(empty.state, "done");
  });

  test("cancelling a queued job removes it and tells its caller why", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await store.cancel(job.id, "caller_left");
    assert.deepEqual((await claimOne(store, worker("w-000001"))).jobs, []);
    const read = await store.readEvents(job.id, "", 0);
    assert.equal(read.state, "cancelled");
    assert.equal(read.events.at(-1)?.type, "error");
    assert.equal((read.events.at(-1) as { code?: string }).code, "caller_left");
  });

  test("a running job's worker learns of a cancel on its next post or poll", async ({ store, peer }, clock) => {
    const a = newJob(clock.t), b = newJob(clock.t);
    await store.enqueue(a);
    await store.enqueue(b);
    const w = worker("w-000001");
    await store.claim({ worker: w, lanes: ["chat"], activeJobs: [], max: 2, waitMs: 0 });
    await store.appendEvents(a.id, w.id, 0, [text("x")]);
    await peer.cancel(a.id, "caller_left");
    await peer.cancel(b.id, "timeout");
    assert.deepEqual(await store.appendEvents(a.id, w.id, 1, [text("y")]), { ok: true, cancelled: true, next: 1 });
    const poll = await claimOne(store, w, [a.id, b.id]);
    assert.deepEqual(poll.cancelled.sort(), [a.id, b.id].sort());
    const read = await store.readEvents(b.id, "", 0);
    assert.equal((read.events.at(-1) as { code?: string }).code, "timeout");
  });

  test(
    "a lease lost before any output puts the job back at the head; the old worker is refused",
    async ({ store }, clock) => {
      const lost = newJob(clock.t), next = newJob(clock.t);
      await store.enqueue(lost);
      await store.enqueue(next);
      await claimOne(store, worker("w-dies-001"));
      await store.appendEvents(lost.id, "w-dies-001", 0, [{ type: "start", model: "m", promptTokens: 3 }]);
      clock.advance(LEASE + 1);
      const reaped = await store.reap();
      assert.equal(reaped.requeued, 1);
      const again = await claimOne(store, worker("w-000002"));
      assert.deepEqual(again.jobs.map((j) => [j.id, j.attempt]), [[lost.id, 2]]);
      assert.equal((await store.appendEvents(lost.id, "w-dies-001", 1, [text("zombie")])).ok, false);
      await store.appendEvents(lost.id, "w-000002", 0, [text("ok"), done]);
      const read = await store.readEvents(lost.id, "", 0);
      assert.equal(read.state, "done");
      assert.deepEqual(read.events.filter((e) => e.type === "text"), [text("ok")]);
    },
  );

  test("a lease lost after output fails the job explicitly (never duplicated output)", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-dies-001"));
    await store.appendEvents(job.id, "w-dies-001", 0, [text("partial")]);
    clock.advance(LEASE + 1);
    assert.equal((await store.reap()).failed, 1);
    const read = await store.readEvents(job.id, "", 0);
    assert.equal(read.state, "failed");
    assert.deepEqual(read.events[0], text("partial"));
    assert.equal((read.events.at(-1) as { code?: string }).code, "worker_lost");
    assert.deepEqual((await claimOne(store, worker("w-000002"))).jobs, []);
  });

  test("polls and posts keep a lease alive", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    const w = worker("w-000001");
    await claimOne(store, w);
    clock.advance(LEASE - 1_000);
    await claimOne(store, w, [job.id]);
    await store.readEvents(job.id, "", 0); // the caller is still there too
    clock.advance(LEASE - 1_000);
    await store.appendEvents(job.id, w.id, 0, [text("a")]);
    await store.readEvents(job.id, "", 0);
    clock.advance(LEASE - 1_000);
    const reaped = await store.reap();
    assert.equal(reaped.requeued + reaped.failed, 0);
    assert.equal((await store.readEvents(job.id, "", 0)).state, "running");
  });

  test("a retryable error before output re-queues; after output it fails", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    await store.appendEvents(job.id, "w-000001", 0, [{ type: "error", message: "out of memory", retryable: true }]);
    const again = await claimOne(store, worker("w-000002"));
    assert.deepEqual(again.jobs.map((j) => [j.id, j.attempt]), [[job.id, 2]]);
    await store.appendEvents(job.id, "w-000002", 0, [text("a"), { type: "error", message: "crash", retryable: true }]);
    const read = await store.readEvents(job.id, "", 0);
    assert.equal(read.state, "failed");
    assert.deepEqual(read.events.map((e) => e.type), ["text", "error"]);
  });

  test(
    "deadlines: a job past AUXOT_JOB_TIMEOUT and a job queued too long end with explicit errors",
    async ({ store }, clock) => {
      const running = newJob(clock.t, { deadlineAt: clock.t + 5_000 });
      const queued = newJob(clock.t, { queueDeadlineAt: clock.t + 3_000 });
      await store.enqueue(running);
      await claimOne(store, worker("w-000001"));
      await store.enqueue(queued);
      clock.advance(6_000);
      const reaped = await store.reap();
      assert.equal(reaped.timedOut, 2);
      const codes = [];
      for (const id of [running.id, queued.id]) {
        const read = await store.readEvents(id, "", 0);
        assert.equal(read.state, "cancelled");
        codes.push((read.events.at(-1) as { code?: string }).code);
      }
      assert.deepEqual(codes, ["timeout", "queue_timeout"]);
      const poll = await claimOne(store, worker("w-000001"), [running.id]);
      assert.deepEqual(poll.cancelled, [running.id]);
    },
  );

  test("a job whose caller stopped reading is cancelled (its router instance died)", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    clock.advance(15_000);
    await store.appendEvents(job.id, "w-000001", 0, [text("a")]);
    assert.equal((await store.reap()).cancelled, 0);
    clock.advance(6_000);
    await store.appendEvents(job.id, "w-000001", 1, [text("b")]);
    assert.equal((await store.reap()).cancelled, 1);
    assert.equal((await store.appendEvents(job.id, "w-000001", 2, [text("c")])).ok, true);
    assert.deepEqual(await store.appendEvents(job.id, "w-000001", 2, [text("c")]), {
      ok: true,
      cancelled: true,
      next: 2,
    });
  });

  test("the queue is bounded", async ({ store }, clock) => {
    for (let i = 0; i < 5; i++) await store.enqueue(newJob(clock.t));
    await assert.rejects(
      store.enqueue(newJob(clock.t)),
      (err) => err instanceof StoreError && err.code === "queue_full",
    );
  });

  test("the fleet view lists live workers, queue depth and running jobs", async ({ store, peer }, clock) => {
    await store.enqueue(newJob(clock.t));
    await store.enqueue(newJob(clock.t));
    await claimOne(store, worker("w-000001", { free: 1 }));
    await peer.claim({
      worker: worker("w-tools-001", { kind: "tools" }),
      lanes: ["tool:x"],
      activeJobs: [],
      max: 1,
      waitMs: 0,
    });
    const fleet = await peer.fleet();
    assert.deepEqual(fleet.workers.map((w) => w.info.id).sort(), ["w-000001", "w-tools-001"]);
    assert.equal(fleet.workers.find((w) => w.info.id === "w-000001")?.activeJobs, 1);
    assert.deepEqual(fleet.queued, { chat: 1 });
    assert.equal(fleet.running, 1);
    clock.advance(31_000);
    await store.reap();
    assert.deepEqual((await store.fleet()).workers, []);
  });

  test("finished jobs are forgotten after their TTL", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    await store.appendEvents(job.id, "w-000001", 0, [done]);
    clock.advance(6_000);
    await store.reap();
    const read = await store.readEvents(job.id, "", 0);
    assert.equal(read.state, "failed");
    assert.equal((read.events[0] as { code?: string }).code, "unknown_job");
  });

  test("verified keys are cached by digest with a TTL", async ({ store, peer }, clock) => {
    assert.equal(await store.getVerifiedKey("d1"), null);
    await store.putVerifiedKey("d1", "api", 1_000);
    assert.equal(await peer.getVerifiedKey("d1"), "api");
    clock.advance(1_001);
    assert.equal(await store.getVerifiedKey("d1"), null);
  });

  test(
    "prompt-cache affinity: a conversation's job waits briefly for the worker that holds it",
    async ({ store }, clock) => {
      const holder = worker("w-holder-1", { cachedConversations: ["conv-1"] });
      await claimOne(store, holder); // registers the holder (nothing to claim yet)
      const job = newJob(clock.t, { conversationKey: "conv-1" });
      const plain = newJob(clock.t);
      await store.enqueue(job);
      await store.enqueue(plain);
      const other = await claimOne(store, worker("w-other-01"));
      assert.deepEqual(other.jobs.map((j) => j.id), [plain.id], "another worker skips the held conversation");
      const mine = await claimOne(store, holder);
      assert.deepEqual(mine.jobs.map((j) => j.id), [job.id]);
      // Past the window, anyone may take it.
      const late = newJob(clock.t, { conversationKey: "conv-1" });
      await store.enqueue(late);
      clock.advance(2_001);
      assert.deepEqual((await claimOne(store, worker("w-other-01"))).jobs.map((j) => j.id), [late.id]);
    },
  );

  test(
    "prompt-cache affinity: a worker holds the conversation of a job it claimed, before it advertises it",
    async ({ store, peer }, clock) => {
      // The caller's next request often arrives before the worker that ran the previous one polls again (its first
      // chance to advertise the conversation): the claim itself records the holder.
      const a = worker("w-claim-a1", { slots: 2, free: 2 });
      const b = worker("w-claim-b1", { slots: 2, free: 2 });
      await claimOne(store, b); // b is live and idle
      const first = newJob(clock.t, { conversationKey: "conv-c" });
      await store.enqueue(first);
      assert.deepEqual((await claimOne(store, a)).jobs.map((j) => j.id), [first.id]);
      // A poll while the job runs (its other slot) advertises no conversation: the record of the leased job stays.
      assert.deepEqual((await claimOne(peer, { ...a, free: 1 }, [first.id])).jobs, []);
      await store.appendEvents(first.id, a.id, 0, [text("one"), done]);

      const second = newJob(clock.t, { conversationKey: "conv-c" });
      await peer.enqueue(second);
      assert.deepEqual((await claimOne(store, b)).jobs, [], "the idle worker leaves it to the holder");
      clock.advance(1_000); // still within the window
      assert.deepEqual((await claimOne(peer, b)).jobs, [], "still within the affinity window");
      const mine = await claimOne(store, { ...a, cachedConversations: ["conv-c"] });
      assert.deepEqual(mine.jobs.map((j) => j.id), [second.id]);
      await store.appendEvents(second.id, a.id, 0, [text("two"), done]);

      // The worker's next poll still replaces what it holds: its cache gone, the conversation is free for anyone.
      await claimOne(store, a);
      const third = newJob(clock.t, { conversationKey: "conv-c" });
      await store.enqueue(third);
      assert.deepEqual((await claimOne(peer, b)).jobs.map((j) => j.id), [third.id]);
    },
  );

  test("counters add up across instances", async ({ store, peer }) => {
    await store.addCounters({ "requests{api=openai}": 2, "tokens{kind=prompt}": 10 });
    await peer.addCounters({ "requests{api=openai}": 1 });
    const counters = await peer.readCounters();
    assert.equal(counters["requests{api=openai}"], 3);
    assert.equal(counters["tokens{kind=prompt}"], 10);
  });

  test("a rate-limited job fails with its retry time instead of going back to the queue", async ({ store }, clock) => {
    const job = newJob(clock.t);
    await store.enqueue(job);
    await claimOne(store, worker("w-000001"));
    const limited: JobEvent = {
      type: "error",
      message: "rate limited",
      retryable: true,
      code: "rate_limited",
      retryAfterSeconds: 30,
    };
    await store.appendEvents(job.id, "w-000001", 0, [limited]);
    const read = await store.readEvents(job.id, "", 0);
    assert.equal(read.state, "failed");
    assert.deepEqual(read.events, [limited]);
    assert.deepEqual((await claimOne(store, worker("w-000002"))).jobs, []);
  });

  // Several models (src/policy/route.ts): one lane per model, "chat:<model>" and "embed:<model>".
  test("per-model lanes: each worker gets its models' jobs only, FIFO per lane", async ({ store, peer }, clock) => {
    const big = [newJob(clock.t, { lane: "chat:big" }), newJob(clock.t, { lane: "chat:big" })];
    const small = [newJob(clock.t, { lane: "chat:small" }), newJob(clock.t, { lane: "chat:small" })];
    for (const job of [big[0], small[0], big[1], small[1]]) await store.enqueue(job);
    const claim = (w: string, lanes: string[], max: number) =>
      peer.claim({ worker: worker(w), lanes, activeJobs: [], max, waitMs: 0 });
    assert.deepEqual((await claim("w-small-01", ["chat:small"], 1)).jobs.map((j) => j.id), [small[0].id]);
    assert.deepEqual((await claim("w-big-0001", ["chat:big"], 4)).jobs.map((j) => j.id), [big[0].id, big[1].id]);
    assert.deepEqual((await claim("w-big-0001", ["chat:big"], 4)).jobs, []);
    const both = await claim("w-both-001", ["chat:big", "chat:small"], 4);
    assert.deepEqual(both.jobs.map((j) => j.id), [small[1].id]);
  });

  test("per-model lanes: a re-queued job goes back to its own model's lane", async ({ store }, clock) => {
    const job = newJob(clock.t, { lane: "embed:e5" });
    await store.enqueue(job);
    await store.claim({ worker: worker("w-embed-01"), lanes: ["embed:e5"], activeJobs: [], max: 1, waitMs: 0 });
    const handBack: JobEvent = { type: "error", message: "not loaded", retryable: true, code: "model_not_loaded" };
    await store.appendEvents(job.id, "w-embed-01", 0, [handBack]);
    assert.deepEqual((await store.fleet()).queued, { "embed:e5": 1 });
    const chat = await store.claim({
      worker: worker("w-chat-001"),
      lanes: ["chat:e5"],
      activeJobs: [],
      max: 1,
      waitMs: 0,
    });
    assert.deepEqual(chat.jobs, []);
    const again = await store.claim({
      worker: worker("w-embed-02"),
      lanes: ["embed:e5"],
      activeJobs: [],
      max: 1,
      waitMs: 0,
    });
    assert.deepEqual(again.jobs.map((j) => [j.id, j.attempt]), [[job.id, 2]]);
  });

  test(
    "per-model lanes: a parked claim wakes for its own models' jobs, not for others'",
    async ({ store, peer }, clock) => {
      const waiting = store.claim({
        worker: worker("w-small-01"),
        lanes: ["chat:small"],
        activeJobs: [],
        max: 1,
        waitMs: 400,
      });
      await new Promise((r) => setTimeout(r, 50));
      const other = newJob(clock.t, { lane: "chat:big" });
      await peer.enqueue(other);
      assert.deepEqual((await waiting).jobs, [], "a tiny-big job does not go to a tiny-small worker");
      const parked = store.claim({
        worker: worker("w-both-001"),
        lanes: ["chat:small", "chat:big"],
        activeJobs: [],
        max: 1,
        waitMs: 10_000,
      });
      const mine = await parked;
      assert.deepEqual(mine.jobs.map((j) => j.id), [other.id]);
      const later = store.claim({
        worker: worker("w-small-01"),
        lanes: ["chat:small"],
        activeJobs: [],
        max: 1,
        waitMs: 10_000,
      });
      await new Promise((r) => setTimeout(r, 50));
      const small = newJob(clock.t, { lane: "chat:small" });
      await peer.enqueue(small);
      assert.deepEqual((await later).jobs.map((j) => j.id), [small.id]);
    },
  );
}
