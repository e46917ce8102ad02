/**
 * Fault scenarios: a bounded load of unique streaming requests against a router process with scripted worker
 * processes, while something goes wrong at random moments — workers killed with SIGKILL, a worker frozen with
 * SIGSTOP past its lease, the router instance restarted, the Redis bridge or redis-server down for a while. Every
 * request is classified by its caller (caller.ts); afterwards the run waits for the fleet to drain and looks for
 * leaks (jobs still leased or queued, busy slots on idle workers, Redis keys that would never expire).
 *
 * The same function serves the short CI tests (small counts) and `deno task reliability` (large counts).
 */
import type { Env } from "../../src/config.ts";
import type { StatusReport } from "../../src/ops/status.ts";
import { testKeys } from "../helpers/router.ts";
import { type Backend, startBackend, type StoreKind } from "./backend.ts";
import { type Flavour, type Outcome, runLoad, streamCall, type Tally, uniqueWords } from "./caller.ts";
import { processGroup, type RouterProcess, type WorkerProcess } from "./processes.ts";

export type FaultKind =
  | "none"
  | "kill-workers"
  | "freeze-worker"
  | "restart-router"
  | "bridge-outage"
  | "redis-restart"
  | "mixed";

export interface FaultScenario {
  store: StoreKind;
  fault: FaultKind;
  requests: number;
  concurrency: number;
  /** Call i starts no earlier than i × intervalMs into the load (default 80 ms: about 12 calls a second). */
  intervalMs?: number;
  workers?: number;
  slots?: number;
  /** How many times the fault strikes during the load (kills, freezes, restarts, outages). */
  strikes?: number;
  /** Outages: how long the bridge/redis-server stays down (ms). */
  outageMs?: number;
  /** Router log level (default info). */
  logLevel?: string;
  /** Extra router variables. */
  env?: Env;
}

export interface ScenarioFigures {
  store: StoreKind;
  fault: FaultKind;
  requests: number;
  strikes: number;
  tally: Tally;
  /** Completed after their job was re-queued at least once (a lost worker, an outage). */
  requeuedThenCompleted: number;
  /** Completed after their answer was continued on another worker (its worker lost mid-answer). */
  continuedThenCompleted: number;
  leaks: Leaks;
  seconds: number;
  /** Outcomes other than completed, grouped by detail, for diagnosis. */
  failures: Record<string, number>;
  /** Each call's outcome, and the fault windows (performance.now() times), for a timeline. */
  outcomes: Outcome[];
  windows: { from: number; to: number }[];
  /** Every line the router and workers wrote. */
  logLines: string[];
}

export interface Leaks {
  /** Jobs still leased (running) or queued once the load drained. */
  jobs: number;
  /** Live workers whose slots are not all free once the load drained. */
  busySlots: number;
  /** Upstash: job keys with no TTL, live index entries, and keys with no TTL (besides counters). */
  redisKeysWithoutTtl: number;
  redisLiveIndexEntries: number;
  /** Upstash: job keys present once drained (they go when finishedTtl passes), and the longest TTL among them. */
  redisJobKeys: number;
  redisLongestJobTtlMs: number;
  /** Upstash: job keys left after a sweep that treats every finished job as past its TTL (must be 0). */
  redisJobKeysAfterSweep: number;
}

const LEASE_MS = 3_000;
/**
 * How often a router sweeps lost leases at most: every second in memory, every 10 s per instance on a shared store
 * (each sweep is a billed command; src/app.ts). A lost lease is recovered within lease + sweep interval.
 */
const SWEEP_INTERVAL_MS: Record<StoreKind, number> = { embedded: 1_000, upstash: 10_000 };

/** How long a frozen worker stays frozen: past its lease and the sweep that recovers its jobs, with a margin. */
function freezeMs(store: StoreKind): number {
  return LEASE_MS + SWEEP_INTERVAL_MS[store] + LEASE_MS;
}

/** Lease and deadlines short enough that a lost worker matters within the run, long enough for a busy machine. */
export const FAULT_ENV: Env = {
  AUXOT_MODEL: "custom:tiny-test",
  AUXOT_CTX_SIZE: "4096",
  AUXOT_MAX_PARALLEL: "2",
  AUXOT_LEASE_TIMEOUT: `${LEASE_MS}ms`,
  AUXOT_JOB_TIMEOUT: "40s",
  AUXOT_QUEUE_TIMEOUT: "30s",
};

/** A caller that has heard nothing for this long is hung: beyond the job timeout plus a sweep. */
const CALLER_DEADLINE_MS = 55_000;
const DRAIN_TIMEOUT_MS = 30_000;

export async function runFaultScenario(scenario: FaultScenario): Promise<ScenarioFigures> {
  const keys = await testKeys();
  const backend = await startBackend(scenario.store);
  const group = processGroup();
  const started = performance.now();
  try {
    const env: Env = {
      ...FAULT_ENV,
      ...keys.env,
      ...backend.env,
      AUXOT_LOG_LEVEL: scenario.logLevel ?? "info",
      ...scenario.env,
    };
    const router = await group.router(env, { name: "router" });
    const slots = scenario.slots ?? 4;
    const workers: WorkerProcess[] = [];
    const addWorker = async () => {
      workers.push(await group.worker(router.url, keys.admin, { slots, tokenDelayMs: 15, name: `w${workers.length}` }));
    };
    await Promise.all(Array.from({ length: scenario.workers ?? 3 }, addWorker));

    // One call first (not counted): the API key is verified (Argon2id) and every worker has polled once.
    const warm = await streamCall({
      url: router.url,
      key: keys.api,
      flavour: "openai",
      words: ["warm"],
      deadlineMs: 30_000,
    });
    if (warm.kind !== "completed") throw new Error(`the warm-up call failed: ${JSON.stringify(warm)}`);
    const run = crypto.randomUUID().slice(0, 6);
    let finished = false;
    const shape = { n: scenario.requests, concurrency: scenario.concurrency, intervalMs: scenario.intervalMs ?? 80 };
    const load = runLoad(shape, (i) => ({
      url: router.url,
      key: keys.api,
      flavour: (i % 2 === 0 ? "openai" : "anthropic") as Flavour,
      words: uniqueWords(run, i),
      thinkMs: 150 + (i % 5) * 50,
      deadlineMs: CALLER_DEADLINE_MS,
    })).finally(() => finished = true);
    const windows: { from: number; to: number }[] = [];
    const strikes = await injectFaults(scenario, {
      router,
      workers,
      addWorker,
      backend,
      windows,
      done: () => finished,
    });
    const { outcomes, tally } = await load;

    const leaks = await measureLeaks(router, workers.filter((w) => w.running), backend, keys.admin);
    const logLines = group.children.flatMap((c) => c.lines);
    return {
      store: scenario.store,
      fault: scenario.fault,
      requests: scenario.requests,
      strikes,
      tally,
      requeuedThenCompleted: requeuedCompleted(outcomes, logLines),
      continuedThenCompleted: continuedCompleted(outcomes, logLines),
      leaks,
      seconds: (performance.now() - started) / 1000,
      failures: failureDetails(outcomes),
      outcomes,
      windows,
      logLines,
    };
  } finally {
    await group.closeAll();
    await backend.close();
  }
}

interface Targets {
  router: RouterProcess;
  workers: WorkerProcess[];
  addWorker(): Promise<void>;
  backend: Backend;
  windows: { from: number; to: number }[];
  done(): boolean;
}

/** The faults a store can suffer, in the order a "mixed" scenario strikes them. */
export function faultsFor(store: StoreKind): Exclude<FaultKind, "none" | "mixed">[] {
  const common = ["kill-workers", "freeze-worker", "restart-router"] as const;
  return store === "upstash" ? [...common, "bridge-outage", "redis-restart"] : [...common];
}

/**
 * Strikes `strikes` times at random moments while the load runs ("mixed": each applicable fault in turn); returns
 * how many strikes happened. A frozen worker is resumed in the background, so later strikes do not wait for it.
 */
async function injectFaults(scenario: FaultScenario, t: Targets): Promise<number> {
  const planned = scenario.fault === "none"
    ? 0
    : scenario.strikes ?? (scenario.fault === "mixed" ? faultsFor(scenario.store).length : 2);
  const outageMs = scenario.outageMs ?? 2_000;
  const thawing: Promise<void>[] = [];
  let strikes = 0;
  await sleep(300 + Math.random() * 500); // let the load get going
  while (strikes < planned && !t.done()) {
    const from = performance.now();
    const fault = scenario.fault === "mixed"
      ? faultsFor(scenario.store)[strikes % faultsFor(scenario.store).length]
      : scenario.fault;
    const alive = t.workers.filter((w) => w.running);
    const victim = alive[Math.floor(Math.random() * alive.length)];
    switch (fault) {
      case "kill-workers":
        await victim.kill();
        await t.addWorker(); // a replacement, so the fleet keeps its size
        break;
      case "freeze-worker":
        victim.signal("SIGSTOP");
        // Past its lease and the next sweep: its jobs are re-queued (no output yet) or failed (output sent) meanwhile.
        thawing.push(sleep(freezeMs(scenario.store)).then(() => victim.signal("SIGCONT")));
        break;
      case "restart-router":
        await t.router.restart({ whileDown: () => sleep(300) });
        break;
      case "bridge-outage":
        if (!t.backend.bridge) throw new Error("bridge-outage needs the upstash store");
        await t.backend.bridge.outage(outageMs);
        break;
      case "redis-restart":
        if (!t.backend.redis) throw new Error("redis-restart needs the upstash store");
        await t.backend.redis.restart({ whileDown: () => sleep(outageMs) });
        break;
    }
    strikes++;
    t.windows.push({ from, to: performance.now() });
    await sleep(800 + Math.random() * 800); // time to recover, so each strike meets a working fleet
  }
  await Promise.all(thawing);
  return strikes;
}

async function status(router: { url: string }, adminKey: string): Promise<StatusReport> {
  const response = await fetch(`${router.url}/api/status`, { headers: { authorization: `Bearer ${adminKey}` } });
  if (!response.ok) throw new Error(`/api/status answered ${response.status}: ${await response.text()}`);
  return await response.json() as StatusReport;
}

/**
 * Waits (bounded) for the fleet to drain — nothing running or queued, every live worker with all slots free — and
 * reports what did not. Dead workers are ignored: the fleet view forgets them after their TTL.
 */
export async function measureLeaks(
  router: { url: string },
  live: WorkerProcess[],
  backend: Backend,
  adminKey: string,
  options: { sweep?: boolean } = {},
): Promise<Leaks> {
  const liveIds = new Set(live.map((w) => w.id));
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  let jobs = 0, busySlots = 0;
  for (;;) {
    try {
      const report = await status(router, adminKey);
      jobs = report.running + report.queue.depth;
      const mine = report.workers.filter((w) => liveIds.has(w.id));
      busySlots = mine.reduce((n, w) => n + (w.slots - w.free) + w.activeJobs, 0) + (liveIds.size - mine.length);
    } catch {
      jobs = busySlots = Number.NaN; // the store is still coming back: try again
    }
    if ((jobs === 0 && busySlots === 0) || Date.now() > deadline) break;
    await sleep(250);
  }
  const redis = await backend.redisKeys();
  if (options.sweep ?? true) await backend.sweepFinished();
  const swept = await backend.redisKeys();
  return {
    jobs,
    busySlots,
    redisKeysWithoutTtl: redis.jobKeysWithoutTtl + redis.persistentKeys.length,
    redisLiveIndexEntries: redis.liveIndexEntries,
    redisJobKeys: redis.jobKeys,
    redisLongestJobTtlMs: redis.longestJobTtlMs,
    redisJobKeysAfterSweep: swept.jobKeys,
  };
}

/** Completed requests whose job a worker started more than once (its logs say `attempt` > 1). */
export function requeuedCompleted(outcomes: Outcome[], lines: string[]): number {
  const retried = new Set<string>();
  for (const line of lines) {
    if (!line.includes('"job started"')) continue;
    try {
      const record = JSON.parse(line) as { job?: string; attempt?: number };
      if (record.job && (record.attempt ?? 1) > 1) retried.add(record.job);
    } catch {
      // not a log record
    }
  }
  return outcomes.filter((o) => o.kind === "completed" && o.jobId && retried.has(o.jobId)).length;
}

/** Completed requests whose answer the router continued on another worker (its log says "job continued"). */
export function continuedCompleted(outcomes: Outcome[], lines: string[]): number {
  const continued = new Set<string>();
  for (const line of lines) {
    if (!line.includes('"job continued"')) continue;
    try {
      const record = JSON.parse(line) as { job?: string };
      if (record.job) continued.add(record.job);
    } catch {
      // not a log record
    }
  }
  return outcomes.filter((o) => o.kind === "completed" && o.jobId && continued.has(o.jobId)).length;
}

export function failureDetails(outcomes: Outcome[]): Record<string, number> {
  const details: Record<string, number> = {};
  for (const o of outcomes) {
    if (o.kind === "completed") continue;
    const key = `${o.kind}${o.status ? ` ${o.status}` : ""}: ${
      (o.detail ?? "").replace(/[0-9a-f]{32}/g, "…").slice(0, 120)
    }`;
    details[key] = (details[key] ?? 0) + 1;
  }
  return details;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
