/**
 * Several router instances on one Upstash store (issue 4's acceptance): two router processes under Deno and one
 * router under workerd (the Workers bundle of src/entry-workers.ts), all on the same REST bridge and redis-server.
 * Workers poll the first Deno instance; callers use the second and the workerd one, so every answer crosses
 * instances through the store. During a load of unique streaming requests: a worker is killed with SIGKILL, the
 * callers' Deno instance is killed with SIGKILL and restarted, and redis-server restarts (its data lost). Every
 * request is classified by its caller; afterwards nothing may be left running or queued, and Redis must hold no key
 * of a finished job once its TTL passed (the sweep is run as an instance whose TTL already passed, or — with
 * `waitForTtl` — the routers' own sweeps are left to remove them after the real finishedTtl).
 */
import type { Env } from "../../src/config.ts";
import { startWorkerd, type WorkerdInstance } from "../fixtures/workerd.ts";
import { testKeys } from "../helpers/router.ts";
import { startBackend } from "./backend.ts";
import { emptyTally, type Flavour, runLoad, streamCall, type Tally, uniqueWords } from "./caller.ts";
import { failureDetails, FAULT_ENV, type Leaks, measureLeaks, requeuedCompleted, sleep } from "./faults.ts";
import { processGroup, type WorkerProcess } from "./processes.ts";
import { MAX_FINISHED_TTL_MS } from "./verdict.ts";

export interface MultiRun {
  requests: number;
  concurrency?: number;
  intervalMs?: number;
  /** Wait for the routers' own sweeps to remove finished jobs after the real finishedTtl (60 s) instead. */
  waitForTtl?: boolean;
}

export interface MultiFigures {
  requests: number;
  /** Outcomes of the calls made through the second Deno instance and through workerd. */
  byInstance: Record<"deno" | "workerd", Tally>;
  tally: Tally;
  requeuedThenCompleted: number;
  strikes: string[];
  leaks: Leaks;
  /** Seconds waited for the routers' own sweeps (waitForTtl), and job keys left after them. */
  ttlWaitSeconds?: number;
  failures: Record<string, number>;
  seconds: number;
}

export async function runMultiInstance(run: MultiRun): Promise<MultiFigures> {
  const keys = await testKeys();
  const backend = await startBackend("upstash");
  const group = processGroup();
  let workerd: WorkerdInstance | undefined;
  let starting: Promise<WorkerdInstance> | undefined;
  const started = performance.now();
  try {
    const env: Env = { ...FAULT_ENV, ...keys.env, ...backend.env, AUXOT_LOG_LEVEL: "info" };
    const bindings: Record<string, string> = {};
    for (const [name, value] of Object.entries(env)) if (value !== undefined) bindings[name] = value;
    starting = startWorkerd({ entry: "src/entry-workers.ts", bindings }).then((instance) => workerd = instance);
    const [home, front, edge] = await Promise.all([
      group.router(env, { name: "deno-workers" }),
      group.router(env, { name: "deno-callers" }),
      starting,
    ]);
    const workers: WorkerProcess[] = [];
    const addWorker = async () => {
      workers.push(
        await group.worker(home.url, keys.admin, { slots: 4, tokenDelayMs: 15, name: `w${workers.length}` }),
      );
    };
    await Promise.all([addWorker(), addWorker(), addWorker()]);
    for (const url of [front.url, edge.url]) {
      const warm = await streamCall({ url, key: keys.api, flavour: "openai", words: ["warm"], deadlineMs: 30_000 });
      if (warm.kind !== "completed") throw new Error(`the warm-up call through ${url} failed: ${JSON.stringify(warm)}`);
    }

    const runId = crypto.randomUUID().slice(0, 6);
    const via = (i: number): "deno" | "workerd" => (i % 2 === 0 ? "deno" : "workerd");
    let finished = false;
    const load = runLoad(
      { n: run.requests, concurrency: run.concurrency ?? 12, intervalMs: run.intervalMs ?? 80 },
      (i) => ({
        url: via(i) === "deno" ? front.url : edge.url,
        key: keys.api,
        flavour: (Math.floor(i / 2) % 2 === 0 ? "openai" : "anthropic") as Flavour,
        words: uniqueWords(runId, i),
        thinkMs: 150 + (i % 5) * 50,
        deadlineMs: 55_000,
      }),
    ).finally(() => finished = true);

    const strikes: string[] = [];
    const pause = () => sleep(800 + Math.random() * 800);
    await sleep(500 + Math.random() * 500);
    if (!finished) {
      const alive = workers.filter((w) => w.running);
      await alive[Math.floor(Math.random() * alive.length)].kill();
      await addWorker();
      strikes.push("worker killed (SIGKILL)");
      await pause();
    }
    if (!finished) {
      await front.restart({ whileDown: () => sleep(300) });
      strikes.push("callers' Deno instance killed (SIGKILL) and restarted");
      await pause();
    }
    if (!finished) {
      await backend.redis!.restart({ whileDown: () => sleep(2_000) });
      strikes.push("redis-server restarted (2 s down, data lost)");
    }
    const { outcomes, tally } = await load;

    const leaks = await measureLeaks(home, workers.filter((w) => w.running), backend, keys.admin, {
      sweep: !run.waitForTtl,
    });
    let ttlWaitSeconds: number | undefined;
    if (run.waitForTtl) {
      const waitStarted = performance.now();
      // The routers' finished-job TTL (no variable sets it: docs/reliability.md), then their next sweeps.
      const deadline = Date.now() + MAX_FINISHED_TTL_MS + 30_000;
      while ((await backend.redisKeys()).jobKeys > 0 && Date.now() < deadline) await sleep(1_000);
      ttlWaitSeconds = (performance.now() - waitStarted) / 1000;
      leaks.redisJobKeysAfterSweep = (await backend.redisKeys()).jobKeys;
    }

    const byInstance = { deno: emptyTally(), workerd: emptyTally() };
    outcomes.forEach((o, i) => byInstance[via(i)][o.kind]++);
    const lines = [...group.children.flatMap((c) => c.lines), ...edge.logs().split("\n")];
    return {
      requests: run.requests,
      byInstance,
      tally,
      requeuedThenCompleted: requeuedCompleted(outcomes, lines),
      strikes,
      leaks,
      ttlWaitSeconds,
      failures: failureDetails(outcomes),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await starting?.catch(() => {}); // a workerd still starting when something else failed is stopped too
    await workerd?.stop();
    await group.closeAll();
    await backend.close();
  }
}
