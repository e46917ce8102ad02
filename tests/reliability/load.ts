/**
 * The load run: many concurrent streaming callers (all at once, in waves) against one router process with fast
 * scripted worker processes. It measures the router from the outside — resident memory before, at its peak and
 * after the load drained, its open sockets and TCP states (a socket left in CLOSE_WAIT is a leaked connection) —
 * and classifies every call as the fault runs do (caller.ts). Leaked timers are checked in-process by the test's
 * sanitizers (load.test.ts), which a separate process cannot show.
 */
import { testKeys } from "../helpers/router.ts";
import { startBackend, type StoreKind } from "./backend.ts";
import { emptyTally, type Flavour, runLoad, streamCall, type Tally, uniqueWords } from "./caller.ts";
import { FAULT_ENV, measureLeaks, sleep } from "./faults.ts";
import { connectionsLeftAfterHangUp, descriptorsOf, memoryOf, processGroup, tcpSocketsOf } from "./processes.ts";

export interface LoadRun {
  store: StoreKind;
  /** Callers in flight at once (each wave starts them all together). */
  callers: number;
  waves: number;
  /** Keep starting waves until this many seconds passed (after `waves` at least): past the finished-job TTL (60 s)
   * the router's memory should stop growing. */
  minSeconds?: number;
  workers?: number;
  slots?: number;
  /** Words per answer. */
  words?: number;
}

export interface LoadFigures {
  store: StoreKind;
  callers: number;
  waves: number;
  requests: number;
  tally: Tally;
  seconds: number;
  /** Time from the first byte sent to the last byte read per call (ms). */
  p50Ms: number;
  p99Ms: number;
  rssBeforeMb: number;
  peakRssMb: number;
  rssAfterMb: number;
  socketsBefore: number;
  peakSockets: number;
  socketsAfter: number;
  /** Of those, idle keep-alive connections to the store's REST endpoint (Upstash; 0 for embedded). */
  storeConnectionsAfter: number;
  /** Router sockets whose peer hung up but that the router never closed, after the drain (must be 0). */
  closeWaitAfter: number;
  /** Router connections still open to the callers after they hung up (must be 0), of how many they had. */
  callerConnectionsAfter: number;
  callerConnectionsClosed: number;
  /** Router RSS after each wave (MB): flat once warm when memory is bounded. */
  rssPerWaveMb: number[];
  /** Jobs running or queued, busy slots on idle workers, after the drain (must be 0). */
  leakedJobs: number;
  leakedSlots: number;
}

const MB = 1024 * 1024;

export async function runStreamingLoad(run: LoadRun): Promise<LoadFigures> {
  const keys = await testKeys();
  const backend = await startBackend(run.store);
  const group = processGroup();
  const client = Deno.createHttpClient({});
  try {
    // Room for every caller: queued jobs per lane are bounded by the store (1,000 by default).
    const env = { ...FAULT_ENV, ...keys.env, ...backend.env, AUXOT_LOG_LEVEL: "warn" };
    const router = await group.router(env, { name: "router" });
    const slots = run.slots ?? 64;
    const live = await Promise.all(
      Array.from(
        { length: run.workers ?? 4 },
        (_, i) => group.worker(router.url, keys.admin, { slots, tokenDelayMs: 0, logLevel: "warn", name: `w${i}` }),
      ),
    );
    const warm = await streamCall({
      url: router.url,
      key: keys.api,
      flavour: "openai",
      words: ["warm"],
      deadlineMs: 30_000,
    });
    if (warm.kind !== "completed") throw new Error(`the warm-up call failed: ${JSON.stringify(warm)}`);
    await sleep(500);
    const before = await memoryOf(router.pid);
    const socketsBefore = (await descriptorsOf(router.pid)).sockets;

    let peakSockets = socketsBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakSockets = Math.max(peakSockets, (await descriptorsOf(router.pid).catch(() => ({ sockets: 0 }))).sockets);
        await sleep(100);
      }
    })();

    const started = performance.now();
    const tally = emptyTally();
    const durations: number[] = [];
    const rssPerWaveMb: number[] = [];
    const runId = crypto.randomUUID().slice(0, 6);
    const more = (wave: number) => wave < run.waves || (performance.now() - started) / 1000 < (run.minSeconds ?? 0);
    for (let wave = 0; more(wave); wave++) {
      const result = await runLoad({ n: run.callers, concurrency: run.callers }, (i) => ({
        url: router.url,
        key: keys.api,
        flavour: (i % 2 === 0 ? "openai" : "anthropic") as Flavour,
        words: uniqueWords(`${runId}.${wave}`, i, run.words ?? 8),
        deadlineMs: 60_000,
        client,
      }));
      for (const [kind, count] of Object.entries(result.tally)) tally[kind as keyof Tally] += count;
      for (const o of result.outcomes) durations.push((o.endedAt ?? 0) - (o.startedAt ?? 0));
      rssPerWaveMb.push(Math.round((await memoryOf(router.pid)).rssBytes / MB));
    }
    const seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;

    const leaks = await measureLeaks(router, live, backend, keys.admin);
    // The callers hang up: the router must close its side of every one of their connections.
    const hangUp = await connectionsLeftAfterHangUp(router, () => client.close());
    const after = await memoryOf(router.pid);
    const routerSockets = await tcpSocketsOf(router.pid);
    durations.sort((a, b) => a - b);
    return {
      store: run.store,
      callers: run.callers,
      waves: rssPerWaveMb.length,
      requests: run.callers * rssPerWaveMb.length,
      tally,
      seconds,
      p50Ms: Math.round(durations[Math.floor(durations.length * 0.5)] ?? 0),
      p99Ms: Math.round(durations[Math.floor(durations.length * 0.99)] ?? 0),
      rssBeforeMb: before.rssBytes / MB,
      peakRssMb: after.peakRssBytes / MB,
      rssAfterMb: after.rssBytes / MB,
      socketsBefore,
      peakSockets,
      socketsAfter: (await descriptorsOf(router.pid)).sockets,
      storeConnectionsAfter: backend.bridge
        ? routerSockets.filter((socket) => String(socket.remotePort) === new URL(backend.bridge!.url).port).length
        : 0,
      closeWaitAfter: routerSockets.filter((socket) => socket.state === "close_wait").length,
      callerConnectionsAfter: hangUp.left,
      callerConnectionsClosed: hangUp.closed,
      rssPerWaveMb,
      leakedJobs: leaks.jobs,
      leakedSlots: leaks.busySlots,
    };
  } finally {
    try {
      client.close();
    } catch {
      // closed above
    }
    await group.closeAll();
    await backend.close();
  }
}
