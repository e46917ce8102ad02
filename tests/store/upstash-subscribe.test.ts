/**
 * Callers waiting on a subscription to their job's channel (the Upstash store with `subscribe`, as on Workers):
 * the conformance suite again with every read naming its reader, then what the subscription must get right — one
 * SUBSCRIBE for a whole streamed answer, batches published before it was live, a batch too large to publish, a
 * subscription the service ends, a second reader, and a service without pub/sub over REST. Real redis-server behind
 * the Upstash REST bridge, which serves `/subscribe/<channel>` as Upstash does (tests/fixtures/upstash-bridge.ts).
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import { StoreError } from "../../src/store/store.ts";
import type { UpstashStore } from "../../src/store/upstash/store.ts";
import { newJob, storeConformance } from "./conformance.ts";
import { type Backend, startBackend, withBackend, worker } from "./upstash-backend.ts";
import { type RedisServer, startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";

/** Every read of a job names the same reader, as one request's reads do. */
function readersPerJob(store: UpstashStore): UpstashStore {
  const readers = new Map<string, object>();
  const readEvents = store.readEvents.bind(store);
  store.readEvents = (jobId, cursor, waitMs, signal) => {
    let reader = readers.get(jobId);
    if (!reader) readers.set(jobId, reader = {});
    return readEvents(jobId, cursor, waitMs, signal, reader);
  };
  return store;
}

storeConformance("upstash subscribed", async (options) => {
  const backend = await startBackend();
  const make = () => readersPerJob(backend.store(options, { subscribe: true, wakeups: "off" }));
  return { store: make(), peer: make(), close: () => backend.close() };
});

const text = (t: string): JobEvent => ({ type: "text", text: t });
const done: JobEvent = { type: "done", finishReason: "stop" };

/** A job enqueued through `caller` and claimed through `workerSide`. */
async function claimedJob(caller: UpstashStore, workerSide: UpstashStore, workerId: string) {
  const job = newJob(Date.now());
  await caller.enqueue(job);
  const [claimed] =
    (await workerSide.claim({ worker: worker(workerId), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 }))
      .jobs;
  assert.equal(claimed.id, job.id);
  return job;
}

/** Reads a job to its end as one reader; every event once, in order. */
async function readAll(store: UpstashStore, jobId: string, reader: object = {}) {
  const received: JobEvent[] = [];
  let cursor = "";
  for (;;) {
    const read = await store.readEvents(jobId, cursor, 20_000, undefined, reader);
    received.push(...read.events);
    cursor = read.cursor;
    if (read.state !== "queued" && read.state !== "running") return { received, state: read.state };
  }
}

function subscribedStores(backend: Backend) {
  return {
    caller: backend.store({}, { subscribe: true, wakeups: "off" }),
    workerSide: backend.store({}, { wakeups: "off" }),
  };
}

Deno.test("upstash subscribed: a 20-batch answer posted through another instance costs its reader one SUBSCRIBE", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0001");
    const events = [...Array.from({ length: 19 }, (_, i) => text(`t${i} `)), done];
    const before = caller.commandCount;
    const reading = readAll(caller, job.id);
    // Each post waits until the reader has had time to take the last: one batch per read, as in a live stream.
    for (let seq = 0; seq < events.length; seq++) {
      await workerSide.appendEvents(job.id, "w-sub-0001", seq, [events[seq]]);
      await new Promise((r) => setTimeout(r, 15));
    }
    const { received, state } = await reading;
    assert.equal(state, "done");
    assert.deepEqual(received, events);
    const used = caller.commandCount - before;
    console.log(`20 batches read through a subscription: ${used} commands (the XREAD path needs one per batch)`);
    assert.ok(used <= 2, `reader used ${used} commands: one SUBSCRIBE (and at most one catch-up read)`);
    assert.equal(backend.bridge.subscriptions, 0, "the subscription is closed once the job ended");
  });
});

Deno.test("upstash subscribed: a subscription request lost in transit is sent again at once, and subscriptions stay on", async () => {
  await withBackend(async (backend) => {
    let failures = 1;
    const caller = backend.store({}, {
      subscribe: true,
      wakeups: "off",
      // What workerd reports for a pooled connection the service had closed.
      fetch: (input, init) => {
        if (String(input).includes("/subscribe/") && failures-- > 0) {
          return Promise.reject(new TypeError("Network connection lost."));
        }
        return fetch(input, init);
      },
    });
    const workerSide = backend.store({}, { wakeups: "off" });
    for (let round = 0; round < 2; round++) {
      const job = await claimedJob(caller, workerSide, `w-sub-lost-${round}`);
      const events: JobEvent[] = [...Array.from({ length: 9 }, (_, i) => text(`t${i} `)), done];
      const before = caller.commandCount;
      const reading = readAll(caller, job.id);
      for (let seq = 0; seq < events.length; seq++) {
        await workerSide.appendEvents(job.id, `w-sub-lost-${round}`, seq, [events[seq]]);
        await new Promise((r) => setTimeout(r, 15));
      }
      assert.deepEqual((await reading).received, events);
      const used = caller.commandCount - before;
      // Round 0: the lost request, the SUBSCRIBE, at most one catch-up read; round 1: no fallback to XREAD per batch.
      assert.ok(used <= 3, `round ${round}: the reader used ${used} commands`);
    }
    assert.equal(caller.retryCount, 1);
  });
});

Deno.test("upstash subscribed: batches stored before the subscription was live are read once, in order", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0002");
    for (let seq = 0; seq < 3; seq++) await workerSide.appendEvents(job.id, "w-sub-0002", seq, [text(`early${seq} `)]);
    const reading = readAll(caller, job.id);
    // Wait until the reader is subscribed, then post the rest: the first of them does not chain to its cursor ('').
    for (let i = 0; i < 500 && backend.bridge.subscriptions === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(backend.bridge.subscriptions, 1);
    await workerSide.appendEvents(job.id, "w-sub-0002", 3, [text("late ")]);
    await workerSide.appendEvents(job.id, "w-sub-0002", 4, [done]);
    const { received } = await reading;
    assert.deepEqual(received, [text("early0 "), text("early1 "), text("early2 "), text("late "), done]);
  });
});

Deno.test("upstash subscribed: an answer that ended before its reader subscribed is read by one catch-up XREAD", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0003");
    // The reader's first read is due (its mark) and sees the stream; the next wait is where the subscription opens.
    await workerSide.appendEvents(job.id, "w-sub-0003", 0, [text("a ")]);
    const reader = {};
    const first = await caller.readEvents(job.id, "", 20_000, undefined, reader);
    assert.deepEqual(first.events, [text("a ")]);
    await workerSide.appendEvents(job.id, "w-sub-0003", 1, [text("b "), done]);
    const rest = await caller.readEvents(job.id, first.cursor, 20_000, undefined, reader);
    assert.deepEqual(rest.events, [text("b "), done]);
    assert.equal(rest.state, "done");
  });
});

Deno.test("upstash subscribed: a batch too large to publish reaches its reader by XREAD", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0004");
    const big = text("x".repeat(100_000));
    const reading = readAll(caller, job.id);
    for (let i = 0; i < 500 && backend.bridge.subscriptions === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await workerSide.appendEvents(job.id, "w-sub-0004", 0, [text("small ")]);
    await workerSide.appendEvents(job.id, "w-sub-0004", 1, [big]);
    await workerSide.appendEvents(job.id, "w-sub-0004", 2, [text("after "), done]);
    const { received } = await reading;
    assert.deepEqual(received, [text("small "), big, text("after "), done]);
  });
});

Deno.test("upstash subscribed: a subscription the service ends loses nothing", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0005");
    const reading = readAll(caller, job.id);
    for (let i = 0; i < 500 && backend.bridge.subscriptions === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await workerSide.appendEvents(job.id, "w-sub-0005", 0, [text("one ")]);
    await backend.redisCommand("CLIENT", "KILL", "TYPE", "pubsub"); // Redis drops every subscriber
    for (let i = 0; i < 500 && backend.bridge.subscriptions > 0; i++) await new Promise((r) => setTimeout(r, 5));
    await workerSide.appendEvents(job.id, "w-sub-0005", 1, [text("two ")]); // published to nobody
    await workerSide.appendEvents(job.id, "w-sub-0005", 2, [done]);
    const { received } = await reading;
    assert.deepEqual(received, [text("one "), text("two "), done]);
  });
});

Deno.test("upstash subscribed: a second reader of the job reads by XREAD and both get every event", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0006");
    const first = readAll(caller, job.id, {});
    const second = readAll(caller, job.id, {});
    const events = [text("p "), text("q "), done];
    for (let seq = 0; seq < events.length; seq++) {
      await new Promise((r) => setTimeout(r, 20));
      await workerSide.appendEvents(job.id, "w-sub-0006", seq, [events[seq]]);
    }
    assert.deepEqual((await first).received, events);
    assert.deepEqual((await second).received, events);
  });
});

Deno.test("upstash subscribed: where the service offers no pub/sub over REST, callers read by XREAD", async () => {
  let redis: RedisServer | undefined;
  try {
    redis = await startRedisServer();
    const bridge = await startUpstashBridge({ redisPort: redis.port, token: "t", noSubscribe: true });
    const { UpstashStore } = await import("../../src/store/upstash/store.ts");
    const caller = new UpstashStore({ url: bridge.url, token: "t", subscribe: true, wakeups: "off" });
    const workerSide = new UpstashStore({ url: bridge.url, token: "t", wakeups: "off" });
    try {
      for (let round = 0; round < 2; round++) {
        const job = await claimedJob(caller, workerSide, `w-nosub-00${round}`);
        const reading = readAll(caller, job.id);
        await new Promise((r) => setTimeout(r, 30));
        await workerSide.appendEvents(job.id, `w-nosub-00${round}`, 0, [text("ok "), done]);
        assert.deepEqual((await reading).received, [text("ok "), done]);
      }
    } finally {
      await caller.close();
      await workerSide.close();
      await bridge.close();
    }
  } finally {
    await redis?.stop();
  }
});

Deno.test("upstash subscribed: a store outage mid-answer loses and repeats nothing", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0007");
    const reader = {};
    const reading = (async () => {
      const received: JobEvent[] = [];
      let cursor = "";
      for (;;) {
        let read;
        try {
          read = await caller.readEvents(job.id, cursor, 20_000, undefined, reader);
        } catch (err) {
          // What JobRun does: a short outage is ridden out by reading again.
          if (!(err instanceof StoreError) || err.code !== "unavailable") throw err;
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        received.push(...read.events);
        cursor = read.cursor;
        if (read.state !== "queued" && read.state !== "running") return received;
      }
    })();
    for (let i = 0; i < 500 && backend.bridge.subscriptions === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await workerSide.appendEvents(job.id, "w-sub-0007", 0, [text("before ")]);
    await backend.bridge.pause(1_500); // subscriptions cut, requests refused
    const during = workerSide.appendEvents(job.id, "w-sub-0007", 1, [text("during ")]); // retried through it
    await backend.bridge.available();
    await during;
    await workerSide.appendEvents(job.id, "w-sub-0007", 2, [text("after "), done]);
    assert.deepEqual(await reading, [text("before "), text("during "), text("after "), done]);
  });
});

Deno.test("upstash subscribed: a subscription that silently stops delivering is noticed, and the batches read", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const job = await claimedJob(caller, workerSide, "w-sub-0008");
    const reader = {};
    const first = caller.readEvents(job.id, "", 30_000, undefined, reader);
    for (let i = 0; i < 500 && backend.bridge.subscriptions === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await workerSide.appendEvents(job.id, "w-sub-0008", 0, [text("heard ")]);
    const heard = await first;
    assert.deepEqual(heard.events, [text("heard ")]);
    backend.bridge.muteSubscriptions(true); // open, but its messages never arrive
    await workerSide.appendEvents(job.id, "w-sub-0008", 1, [text("unheard ")]);
    // One read, with room to wait far longer than the quiet check: it returns the batch the subscription never
    // delivered (found by the check), not an empty read at the end of its wait.
    const next = await caller.readEvents(job.id, heard.cursor, 30_000, undefined, reader);
    assert.deepEqual(next.events, [text("unheard ")]);
    backend.bridge.muteSubscriptions(false);
    await workerSide.appendEvents(job.id, "w-sub-0008", 2, [done]);
    const last = await caller.readEvents(job.id, next.cursor, 30_000, undefined, reader);
    assert.deepEqual(last.events, [done]);
  });
});

Deno.test("upstash subscribed: a caller that subscribes before enqueueing hears every batch, however soon it comes", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    for (let round = 0; round < 3; round++) {
      const reader = {};
      const job = newJob(Date.now());
      const before = caller.commandCount;
      await caller.enqueue(job, reader); // SUBSCRIBE, confirmed, then the enqueue script
      assert.equal(backend.bridge.subscriptions, 1);
      // The worker answers before the caller's first read: a subscription opened then would have missed it all.
      const w = `w-watch-00${round}`;
      const [claimed] =
        (await workerSide.claim({ worker: worker(w), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 }))
          .jobs;
      assert.equal(claimed.id, job.id);
      await workerSide.appendEvents(job.id, w, 0, [text("fast ")]);
      await workerSide.appendEvents(job.id, w, 1, [done]);
      const { received } = await readAll(caller, job.id, reader);
      assert.deepEqual(received, [text("fast "), done]);
      // (the first round also loads the enqueue script: EVALSHA answered NOSCRIPT, then EVAL)
      assert.equal(caller.commandCount - before, round === 0 ? 3 : 2, "SUBSCRIBE and enqueue: no catch-up XREAD");
      for (let i = 0; i < 200 && backend.bridge.subscriptions > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(backend.bridge.subscriptions, 0, "closed once the job ended");
    }
  });
});

Deno.test("upstash subscribed: a job that cannot be enqueued leaves no subscription open", async () => {
  await withBackend(async (backend) => {
    const caller = backend.store({ maxQueued: 1 }, { subscribe: true, wakeups: "off" });
    await caller.enqueue(newJob(Date.now()));
    await assert.rejects(caller.enqueue(newJob(Date.now()), {}), /full/);
    // The bridge sees its client go away a moment later.
    for (let i = 0; i < 200 && backend.bridge.subscriptions > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(backend.bridge.subscriptions, 0);
  });
});

Deno.test("upstash subscribed: a caller that waits for the whole answer takes it with one XREAD BLOCK, subscribing only once it proves long", async () => {
  await withBackend(async (backend) => {
    const { caller, workerSide } = subscribedStores(backend);
    const whole = (now: number) => {
      const job = newJob(now);
      if (job.payload.kind !== "chat") throw new Error("a chat job");
      return { ...job, payload: { ...job.payload, stream: false } };
    };
    for (const [round, batches] of [1, 1, 10].entries()) {
      const reader = {};
      const job = whole(Date.now());
      const before = caller.commandCount;
      await caller.enqueue(job, reader);
      assert.equal(backend.bridge.subscriptions, 0, "no subscription before the enqueue");
      const reading = readAll(caller, job.id, reader);
      const w = `w-whole-${batches}`;
      const [claimed] =
        (await workerSide.claim({ worker: worker(w), lanes: ["chat"], activeJobs: [], max: 1, waitMs: 0 })).jobs;
      assert.equal(claimed.id, job.id);
      const events: JobEvent[] = [...Array.from({ length: batches * 2 - 1 }, (_, i) => text(`t${i} `)), done];
      let subscribed = 0;
      for (let seq = 0, batch = 0; batch < batches; batch++) {
        await new Promise((r) => setTimeout(r, 40));
        subscribed = Math.max(subscribed, backend.bridge.subscriptions);
        const part = events.slice(seq, seq + 2);
        await workerSide.appendEvents(job.id, w, seq, part);
        seq += part.length;
      }
      const { received, state } = await reading;
      assert.equal(state, "done");
      assert.deepEqual(received, events);
      const used = caller.commandCount - before;
      if (batches === 1) {
        // (the first round also loads the enqueue script: EVALSHA answered NOSCRIPT, then EVAL)
        assert.equal(used, round === 0 ? 3 : 2, "the enqueue and one XREAD BLOCK");
        assert.equal(subscribed, 0);
      } else {
        // The enqueue, the XREAD that took the first batch, the SUBSCRIBE, at most one catch-up read: not an XREAD
        // per batch.
        assert.ok(used <= 4, `a 10-batch whole answer cost its caller ${used} commands`);
        assert.equal(subscribed, 1, "subscribed after the first batch");
      }
    }
  });
});
