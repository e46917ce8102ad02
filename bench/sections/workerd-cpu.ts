/**
 * (9) CPU per request path under workerd (Workers Free allows 10 ms of CPU per request): the router bundle under real
 * workerd on the Upstash store, each path driven alone, sequentially, and the workerd process's CPU time (from
 * /proc) divided by the requests sent. A chat request's row includes everything its answer caused in the router
 * (the worker's claim and event posts), so it bounds the chat request's own CPU from above.
 */
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { startWorkersStack } from "../../tests/fixtures/workers-stack.ts";
import { startWorker, TEST_ENV, testKeys } from "../../tests/helpers/router.ts";
import { ScriptedEngine } from "../../tests/helpers/scripted-engine.ts";
import type { BenchContext } from "../context.ts";
import { cpuMs, findPid } from "../lib/proc-stats.ts";

const CPU_LIMIT_MS = 10;

export async function workerdCpuSection(ctx: BenchContext): Promise<void> {
  const n = ctx.settings.mode === "quick" ? 10 : 100;
  const section = ctx.report.section("9. CPU per request path under workerd (Upstash store)");
  ctx.log(`workerd CPU per path: ${n} requests per path`);
  const stack = await startWorkersStack();
  const keys = await testKeys();
  const router = await stack.startRouter({ ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" });
  try {
    const pid = findPid(`--socket-addr=http=127.0.0.1:${new URL(router.url).port}`);
    if (pid === undefined) throw new Error("the workerd process was not found in /proc");
    const api = { authorization: `Bearer ${keys.api}`, "content-type": "application/json" };
    const admin = { authorization: `Bearer ${keys.admin}`, "content-type": "application/json" };
    const send = async (path: string, init: RequestInit = {}) => {
      const response = await fetch(`${router.url}${path}`, init);
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
    const chat = (prompt: string, stream: boolean) =>
      send("/v1/chat/completions", {
        method: "POST",
        headers: api,
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }], stream }),
      });
    const paths: { label: string; run: () => Promise<unknown>; count: number }[] = [
      { label: "GET /health (fleet view)", run: () => send("/health"), count: n },
      { label: "GET /v1/models (API key, verified before)", run: () => send("/v1/models", { headers: api }), count: n },
      {
        label: "POST /worker/v1/poll (answered at once)",
        run: () => send("/worker/v1/poll", { method: "POST", headers: admin, body: idlePoll }),
        count: n,
      },
      { label: "GET /api/status (admin)", run: () => send("/api/status", { headers: admin }), count: Math.ceil(n / 4) },
      { label: "chat, non-streaming, 16 tokens (+ its worker traffic)", run: () => chat("words 16", false), count: n },
      {
        label: "chat, streaming, 500 tokens at 100/s (+ its worker traffic)",
        run: () => chat("words 500", true),
        count: Math.max(2, n / 25),
      },
    ];
    const worker = startWorker(router, new ScriptedEngine({ slots: 2, tokenDelayMs: 10 }), {
      key: keys.admin,
      pollWaitMs: 60_000,
    });
    const rows: string[][] = [];
    let worst = 0;
    try {
      for (const path of paths) {
        await path.run(); // warm: key verified, scripts loaded
        const before = cpuMs(pid);
        for (let i = 0; i < path.count; i++) await path.run();
        const perRequest = (cpuMs(pid) - before) / path.count;
        worst = Math.max(worst, perRequest);
        rows.push([path.label, String(path.count), `${perRequest.toFixed(2)} ms`]);
      }
    } finally {
      await worker.stop();
    }
    section.tables.push({ header: ["Path", "Requests", "workerd CPU / request"], rows });
    section.notes.push(
      "CPU from /proc/<pid>/stat (10 ms ticks) over each path's requests; the worker runs in the benchmark's process. " +
        "The first Argon2id verification of a key (once per key, see the auth section) is not in these rows.",
    );
    ctx.report.target({
      target: "CPU per request path under workerd",
      goal: `< ${CPU_LIMIT_MS} ms`,
      measured: `${worst.toFixed(2)} ms (worst path)`,
      met: worst < CPU_LIMIT_MS,
    });
  } finally {
    await router.stop();
    await stack.close();
  }
}
