/**
 * Fuzz: 12,000 adversarial worker-protocol bodies from an authenticated worker (the real router in process, its real
 * embedded store): polls with any worker description, made-up ids by the thousand, active jobs with valid, borrowed and
 * made-up lease tokens; event batches for real claimed jobs with their real tokens as well as wrong ones, any seq,
 * oversized and malformed events. Every answer must be a 4xx or 2xx (never a 5xx), in the worker protocol's error
 * shape, and what the router holds must stay bounded: the fleet (worker ids per key) and the heap.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { WORKER_BOUNDS } from "../../src/dispatch/worker-bounds.ts";
import { createLogger } from "../../src/log.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { laneOf, policyModels } from "../../src/policy/route.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { newJob } from "../store/conformance.ts";
import { TEST_ENV, testKeys } from "../helpers/router.ts";

const BODIES = 12_000;

Deno.test(`fuzz: ${BODIES} adversarial worker-protocol bodies from an authenticated worker`, async () => {
  const keys = await testKeys();
  const config = loadConfig({ ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "error", AUXOT_POLL_WAIT: "1s" });
  const store = new EmbeddedStore({ leaseMs: config.leaseMs });
  const errors: string[] = [];
  const app = createApp({ config, store, log: createLogger("error", (line) => errors.push(line)) });
  const call = async (path: string, body: unknown, key = keys.admin) => {
    const response = await app.fetch(
      new Request(`http://router${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
      { client: "127.0.0.1" },
    );
    return { status: response.status, body: await response.json() };
  };

  // Real jobs claimed by one real worker id: the fuzz posts to them with real and wrong tokens.
  const workerId = "fuzz-worker-0001";
  const first = await call("/worker/v1/poll", {
    protocol: PROTOCOL_VERSION,
    worker: { id: workerId, kind: "gpu", slots: 64, free: 0 },
    waitMs: 0,
  });
  const loaded = { policyVersion: first.body.policy.version, model: "m" };
  const lane = laneOf(policyModels(config.policy)[0]);
  for (let i = 0; i < 40; i++) await store.enqueue(newJob(Date.now(), { lane }));
  const claimed = (await call("/worker/v1/poll", {
    protocol: PROTOCOL_VERSION,
    worker: { id: workerId, kind: "gpu", slots: 64, free: 40, loaded },
    waitMs: 0,
  })).body.jobs as { id: string; leaseToken: string }[];
  assert.equal(claimed.length, 40);

  const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("", "__proto__", "constructor", "\u0000"));
  const anything = fc.anything({ maxDepth: 3, maxKeys: 4 });
  const job = fc.constantFrom(...claimed);
  const w = <T>(arbitrary: fc.Arbitrary<T>, weight: number) => ({ arbitrary, weight });
  const token = fc.oneof(
    w(job.map((j) => j.leaseToken), 6),
    job.map((j) => j.leaseToken.replace(/.$/, "A")),
    text.map((t) => `lt1.1.a.${t}`),
    text,
    anything,
  );
  const event = fc.oneof(
    w(fc.record({ type: fc.constant("text"), text: fc.string({ maxLength: 2_000 }) }), 20),
    w(fc.record({ type: fc.constant("reasoning"), text: fc.string({ maxLength: 200 }) }), 4),
    w(fc.record({ type: fc.constant("start"), model: text }), 2),
    w(fc.record({ type: fc.constant("usage"), usage: anything }), 1),
    w(
      fc.record({
        type: fc.constantFrom("done", "error", "tool_call", "bogus"),
        finishReason: anything,
        message: text,
      }),
      1,
    ),
    w(anything, 1),
  );
  const eventsPost = fc.record({
    job,
    body: fc.record({
      workerId: fc.oneof(w(fc.constant(workerId), 8), w(text, 1), w(anything, 1)),
      leaseToken: token,
      seq: fc.oneof(
        w(fc.integer({ min: 0, max: 30 }), 12),
        w(fc.constantFrom(-1, WORKER_BOUNDS.maxEventsPerJob), 1),
        w(anything, 1),
      ),
      events: fc.oneof(w(fc.array(event, { minLength: 1, maxLength: 6 }), 12), w(anything, 1)),
    }, { requiredKeys: ["workerId", "leaseToken", "seq", "events"] }),
  });
  const tool = fc.record({ name: text, description: fc.string({ maxLength: 500 }), parameters: anything });
  const pollPost = fc.record({
    protocol: fc.oneof(w(fc.constant(PROTOCOL_VERSION), 10), w(anything, 1)),
    worker: fc.oneof(
      // Mostly well-formed workers under ever new ids: the worker-id bound is what holds the fleet.
      w(
        fc.record({
          id: fc.uuid().map((u) => `w-${u}`),
          kind: fc.constant("gpu"),
          slots: fc.integer({ min: 0, max: 8 }),
          free: fc.constant(0),
          loaded: fc.constant(loaded),
        }),
        6,
      ),
      w(
        fc.record({
          id: fc.oneof(fc.constant(workerId), fc.uuid().map((u) => `w-${u}`), text),
          kind: fc.constantFrom("gpu", "cli", "tools", "other"),
          slots: fc.integer({ min: -1, max: 2_000 }),
          free: fc.constant(0), // a fuzzed poll never takes the real jobs away
          loaded: fc.oneof(fc.constant(loaded), anything),
          tools: fc.oneof(fc.array(tool, { maxLength: 80 }), anything),
          cachedConversations: fc.array(text, { maxLength: 300 }),
        }, { requiredKeys: ["free"] }),
        3,
      ),
      w(anything, 1),
    ),
    activeJobs: fc.oneof(w(fc.array(fc.oneof(job.map((j) => j.id), text), { maxLength: 10 }), 6), w(anything, 1)),
    leases: fc.oneof(w(fc.dictionary(fc.oneof(job.map((j) => j.id), text), token, { maxKeys: 10 }), 6), w(anything, 1)),
    waitMs: fc.oneof(w(fc.constant(0), 8), w(fc.constantFrom(-1, "5", 1e9), 1)),
  }, { requiredKeys: ["waitMs"] });

  const heapBefore = Deno.memoryUsage().heapUsed;
  const statuses = new Map<number, number>();
  const bad: string[] = [];
  const samples = fc.sample(
    fc.oneof(
      { arbitrary: eventsPost.map((p) => ({ kind: "events" as const, ...p })), weight: 3 },
      { arbitrary: pollPost.map((body) => ({ kind: "poll" as const, body })), weight: 2 },
      { arbitrary: fc.string({ maxLength: 300 }).map((raw) => ({ kind: "raw" as const, raw })), weight: 1 },
    ),
    { numRuns: BODIES, seed: 20261206 },
  );
  for (const sample of samples) {
    const { status, body } = sample.kind === "events"
      ? await call(`/worker/v1/jobs/${encodeURIComponent(sample.job.id)}/events`, sample.body)
      : sample.kind === "poll"
      ? await call("/worker/v1/poll", sample.body)
      : await call(`/worker/v1/${["poll", "jobs/x/events"][sample.raw.length % 2]}`, sample.raw);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const shaped = typeof body?.error?.code === "string" && typeof body?.fatal === "boolean";
    if (status >= 500 || (status >= 400 && !shaped)) bad.push(`${status} ${JSON.stringify(body).slice(0, 300)}`);
  }
  const fleet = await store.fleet();
  const heapGrowthMb = (Deno.memoryUsage().heapUsed - heapBefore) / 1e6;
  console.log(
    `worker fuzz: ${samples.length} bodies, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ` +
      `fleet ${fleet.workers.length} workers, heap growth ${heapGrowthMb.toFixed(1)} MB`,
  );
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} answers were 5xx or not in the protocol's shape`);
  assert.ok(samples.length >= 10_000);
  assert.ok(
    fleet.workers.length <= WORKER_BOUNDS.maxWorkerIdsPerKey.admin + WORKER_BOUNDS.maxWorkerIdsPerKey.tools,
    `${fleet.workers.length} workers held`,
  );
  assert.ok(heapGrowthMb < 200, `heap grew ${heapGrowthMb.toFixed(1)} MB`);
  assert.deepEqual(errors.filter((l) => l.includes('"error"')).slice(0, 3), [], "nothing logged as a router error");
  await store.close();
});
