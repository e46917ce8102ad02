/**
 * (9) CPU per request path under workerd (Workers Free allows 10 ms of CPU per request): the router bundle under real
 * workerd on the Upstash store, each path driven alone, sequentially, and the workerd process's CPU time (from
 * /proc) divided by the requests sent. Callers talk to one workerd instance and the worker polls and posts through
 * another (as isolates differ on Workers), so the chat rows are the callers' requests alone, and the worker's
 * traffic per answer is measured on its own instance. A last row sends the streams to the worker's instance (a caller
 * and its worker's posts in one isolate, where the caller reads the batches from memory): that row is the caller's and
 * the worker's CPU together.
 *
 * A streamed answer's caller pays once (auth, enqueue, subscription) and then per batch (about one a second on this
 * store): two stream rows of different lengths give both parts, and so how long a stream fits in 10 ms.
 */
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { startWorkersStack } from "../../tests/fixtures/workers-stack.ts";
import { startWorker, TEST_ENV, testKeys } from "../../tests/helpers/router.ts";
import { ScriptedEngine } from "../../tests/helpers/scripted-engine.ts";
import type { BenchContext } from "../context.ts";
import { findPid, threadCpuMs } from "../lib/proc-stats.ts";

const CPU_LIMIT_MS = 10;

export async function workerdCpuSection(ctx: BenchContext): Promise<void> {
  const quick = ctx.settings.mode === "quick";
  const n = quick ? 10 : 100;
  const longTokens = quick ? 1_000 : 2_000;
  const section = ctx.report.section("9. CPU per request path under workerd (Upstash store)");
  ctx.log(`workerd CPU per path: ${n} requests per path`);
  const stack = await startWorkersStack();
  const keys = await testKeys();
  const env = { ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" };
  const router = await stack.startRouter(env);
  const workerSide = await stack.startRouter(env);
  try {
    const pidOf = (url: string) => {
      const found = findPid(`--socket-addr=http=127.0.0.1:${new URL(url).port}`);
      if (found === undefined) throw new Error("a workerd process was not found in /proc");
      return found;
    };
    const pid = pidOf(router.url), workerPid = pidOf(workerSide.url);
    const api = { authorization: `Bearer ${keys.api}`, "content-type": "application/json" };
    const admin = { authorization: `Bearer ${keys.admin}`, "content-type": "application/json" };
    const send = async (path: string, init: RequestInit = {}, base = router.url) => {
      const response = await fetch(`${base}${path}`, init);
      const text = await response.text();
      if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
      return text;
    };
    const policy = JSON.parse(
      await send("/worker/v1/poll", {
        method: "POST",
        headers: admin,
        body: JSON.stringify({
          protocol: PROTOCOL_VERSION,
          worker: { id: "w-cpu-probe", kind: "gpu", slots: 1, free: 1 },
          activeJobs: [],
          waitMs: 0,
        }),
      }),
    ).policy;
    const idlePoll = JSON.stringify({
      protocol: PROTOCOL_VERSION,
      worker: {
        id: "w-cpu-probe",
        kind: "gpu",
        slots: 1,
        free: 0,
        loaded: { policyVersion: policy.version, model: "m" },
      },
      activeJobs: [],
      waitMs: 0,
    });
    const chat = (prompt: string, stream: boolean, base = router.url) =>
      send("/v1/chat/completions", {
        method: "POST",
        headers: api,
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }], stream }),
      }, base);
    const paths: {
      label: string;
      run: () => Promise<unknown>;
      count: number;
      chat?: boolean;
      /** Sent to the worker's own instance: the row is the caller's requests and the worker's traffic together. */
      sameInstance?: boolean;
      /** Runs once unmeasured first (a key verified, scripts loaded); not needed after a row that warmed the same. */
      warm?: boolean;
      /** A stream row, for the per-second fit. */
      stream?: boolean;
    }[] = [
      { label: "GET /health (fleet view)", run: () => send("/health"), count: n },
      { label: "GET /v1/models (API key, verified before)", run: () => send("/v1/models", { headers: api }), count: n },
      {
        label: "POST /worker/v1/poll (answered at once)",
        run: () => send("/worker/v1/poll", { method: "POST", headers: admin, body: idlePoll }),
        count: n,
      },
      { label: "GET /api/status (admin)", run: () => send("/api/status", { headers: admin }), count: Math.ceil(n / 4) },
      { label: "chat, non-streaming, 16 tokens", run: () => chat("words 16", false), count: n, chat: true },
      {
        label: "chat, streaming, 500 tokens at 100/s",
        run: () => chat("words 500", true),
        count: Math.max(2, Math.ceil(n / 12)),
        chat: true,
        stream: true,
      },
      {
        label: `chat, streaming, ${longTokens.toLocaleString("en-US")} tokens at 100/s`,
        run: () => chat(`words ${longTokens}`, true),
        count: quick ? 1 : 2,
        chat: true,
        warm: false,
        stream: true,
      },
      {
        // On Workers a caller and its worker's posts may share an isolate: the caller then reads the batches from
        // memory, woken by the posts (src/store/wakeup.ts), instead of one XREAD each.
        label: "same, caller on the worker's instance (caller + worker's polls and posts)",
        run: () => chat("words 500", true, workerSide.url),
        count: Math.max(2, Math.ceil(n / 12)),
        chat: true,
        sameInstance: true,
      },
    ];
    const worker = startWorker(workerSide, new ScriptedEngine({ slots: 2, tokenDelayMs: 10 }), {
      key: keys.admin,
      pollWaitMs: 60_000,
    });
    const rows: string[][] = [];
    let worst = { ms: 0, label: "" };
    const streams: { perRequest: number; seconds: number }[] = [];
    try {
      // workerd's own CPU while nothing is asked of it (its worker's poll parked): subtracted from each path's
      // figure for the time that path took, so a slow path is not charged for the runtime's idle work.
      await new Promise((r) => setTimeout(r, 1_000));
      const idleFrom = threadCpuMs(pid), idleAt = performance.now();
      await new Promise((r) => setTimeout(r, quick ? 1_000 : 5_000));
      const idlePerMs = (threadCpuMs(pid) - idleFrom) / (performance.now() - idleAt);
      for (const path of paths) {
        if (path.warm !== false) await path.run(); // warm: key verified, scripts loaded
        const measured = path.sameInstance ? workerPid : pid;
        const before = threadCpuMs(measured), workerBefore = threadCpuMs(workerPid), started = performance.now();
        for (let i = 0; i < path.count; i++) await path.run();
        const total = threadCpuMs(measured) - before;
        const workerTraffic = (threadCpuMs(workerPid) - workerBefore) / path.count;
        const idle = idlePerMs * (performance.now() - started);
        const perRequest = Math.max(0, total - idle) / path.count;
        // The same-instance row is many requests (the worker's polls and posts too), not one path.
        if (!path.sameInstance && perRequest > worst.ms) worst = { ms: perRequest, label: path.label };
        if (path.stream && !path.sameInstance) {
          streams.push({ perRequest, seconds: (performance.now() - started) / 1_000 / path.count });
        }
        rows.push([
          path.label,
          String(path.count),
          `${(total / path.count).toFixed(2)} ms`,
          `${perRequest.toFixed(2)} ms`,
          path.sameInstance ? "(in the row)" : path.chat ? `${workerTraffic.toFixed(2)} ms` : "–",
        ]);
      }
      section.notes.push(`workerd idle: ${(idlePerMs * 1000).toFixed(1)} ms of CPU a second.`);
      const fit = streamFit(streams);
      if (fit) {
        section.notes.push(
          `A streamed answer's caller costs about ${fit.fixedMs.toFixed(1)} ms once plus ` +
            `${fit.perSecondMs.toFixed(2)} ms per second it streams (a batch a second; fitted to the two stream ` +
            `rows): about ${fit.secondsWithin(CPU_LIMIT_MS).toFixed(1)} s of streaming fit in ${CPU_LIMIT_MS} ms. ` +
            "This is workerd's process CPU (its I/O and the runtime's native work included): an upper bound on what " +
            "Cloudflare counts as a request's CPU time.",
        );
      }
    } finally {
      await worker.stop();
    }
    section.tables.push({
      header: [
        "Path",
        "Requests",
        "workerd CPU / request",
        "less workerd's idle CPU",
        "worker's polls and posts per answer (its instance)",
      ],
      rows,
    });
    section.notes.push(
      "CPU from /proc/<pid>/task/*/schedstat (the scheduler's run time of every workerd thread, in ns) over each " +
        "path's requests; the worker runs in the benchmark's process. " +
        "The first Argon2id verification of a key (once per key, see the auth section) is not in these rows.",
    );
    ctx.report.target({
      target: "CPU per request path under workerd",
      goal: `< ${CPU_LIMIT_MS} ms`,
      measured: `${worst.ms.toFixed(2)} ms (worst path: ${worst.label})`,
      met: worst.ms < CPU_LIMIT_MS,
    });
  } finally {
    await router.stop();
    await workerSide.stop();
    await stack.close();
  }
}

/** A streamed answer's caller CPU as fixed + per streamed second, from two stream rows of different lengths. */
function streamFit(rows: { perRequest: number; seconds: number }[]) {
  if (rows.length < 2) return undefined;
  const [short, long] = [...rows].sort((a, b) => a.seconds - b.seconds);
  if (long.seconds - short.seconds < 1) return undefined;
  const perSecondMs = Math.max(0, (long.perRequest - short.perRequest) / (long.seconds - short.seconds));
  const fixedMs = Math.max(0, short.perRequest - perSecondMs * short.seconds);
  return {
    fixedMs,
    perSecondMs,
    secondsWithin: (limitMs: number) => perSecondMs > 0 ? Math.max(0, (limitMs - fixedMs) / perSecondMs) : Infinity,
  };
}
