/**
 * Failover scenarios (issue 17): a worker dies or freezes mid-answer while another worker is ready, and the caller's
 * stream must go on as one answer. Shared by tests/reliability/failover.test.ts (small counts) and
 * `deno task reliability --only failover` (the kill → next-token latency over many kills).
 *
 * - `runGpuKill`: the real GPU worker (workers/gpu/main.ts, node-llama-cpp on the tiny GGUF) serving a greedy
 *   stream is killed with SIGKILL after some tokens; the caller's text must equal the same request's text without
 *   a fault. With `tool`, the stream is a forced tool call: it must fail explicitly (tool calls are not resumed).
 * - `runPrefillFreeze`: a scripted worker in a paced "prompt evaluation" (progress every 200 ms) is not declared
 *   lost while it reports progress, and is declared lost within AUXOT_WORKER_SILENCE once frozen with SIGSTOP.
 * - `runKillLoop`: many kills of a fast scripted worker mid-stream; the latency from the kill to the caller's next
 *   token, and whether every joined answer was exact.
 */
import type { Env } from "../../src/config.ts";
import { testKeys } from "../helpers/router.ts";
import { startBackend, type StoreKind } from "./backend.ts";
import { type Child, processGroup, type WorkerProcess } from "./processes.ts";

export interface StreamResult {
  text: string;
  /** Role chunks seen (must be 1). */
  roleChunks: number;
  done: boolean;
  error?: string;
  requestId: string;
  /** performance.now() of each content chunk's arrival. */
  arrivals: number[];
}

/**
 * Streams one OpenAI chat completion, calling `onChunk` after each content chunk (it may return a promise, e.g.
 * to kill the worker, and the reading goes on meanwhile).
 */
export async function streamChat(
  url: string,
  key: string,
  body: Record<string, unknown>,
  onChunk?: (count: number, requestId: string) => void,
): Promise<StreamResult> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const requestId = response.headers.get("x-request-id") ?? "";
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const result: StreamResult = { text: "", roleChunks: 0, done: false, requestId, arrivals: [] };
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("data: ")) continue;
      if (line === "data: [DONE]") {
        result.done = true;
        continue;
      }
      const chunk = JSON.parse(line.slice(6)) as {
        error?: { message: string };
        choices?: { delta: { role?: string; content?: string; tool_calls?: unknown[] } }[];
      };
      if (chunk.error) result.error = chunk.error.message;
      const delta = chunk.choices?.[0]?.delta;
      if (delta?.role) result.roleChunks++;
      if (delta?.content || delta?.tool_calls) {
        result.text += delta.content ?? JSON.stringify(delta.tool_calls);
        result.arrivals.push(performance.now());
        onChunk?.(result.arrivals.length, requestId);
      }
    }
  }
  return result;
}

export interface KillFigures {
  store: StoreKind;
  reference: string;
  faulted: StreamResult;
  /** The caller's text equals the unfaulted text. */
  exact: boolean;
  /** From the kill to the caller's next chunk (undefined when none came). */
  killToNextTokenMs?: number;
  chunksBeforeKill: number;
  continued: number;
  /** Characters of text the continuation resumed after, and how many tokens it carried (router log). */
  resumedAfterChars?: number;
  resumedTokens?: number;
}

/** The silence window of these scenarios: the floor of the kill → next-token latency. */
export const FAILOVER_SILENCE = "3s";

const ROUTER_ENV: Env = {
  AUXOT_MODEL: "custom:tiny-test",
  AUXOT_CTX_SIZE: "4096",
  AUXOT_MAX_PARALLEL: "1",
  AUXOT_WORKER_SILENCE: FAILOVER_SILENCE,
  AUXOT_LEASE_TIMEOUT: "30s",
  AUXOT_JOB_TIMEOUT: "120s",
  AUXOT_QUEUE_TIMEOUT: "60s",
  AUXOT_LOG_LEVEL: "info",
};

/**
 * From the kill to the first token of the worker that took over: chunks the dead worker had already posted still
 * arrive right after the kill, so this is the chunk after the longest gap that follows the kill.
 */
function resumedAfter(arrivals: number[], killedAt: number | undefined): number | undefined {
  if (killedAt === undefined) return undefined;
  let previous = killedAt, best: number | undefined, widest = -1;
  for (const at of arrivals) {
    if (at <= killedAt) continue;
    if (at - previous > widest) [widest, best] = [at - previous, at];
    previous = at;
  }
  return best === undefined ? undefined : best - killedAt;
}

/** The worker among `workers` whose log says it started job `jobId`. */
function servingWorker(workers: Child[], jobId: string): Child | undefined {
  return workers.find((w) => w.running && w.lines.some((l) => l.includes('"job started"') && l.includes(jobId)));
}

async function waitFor<T>(check: () => T | Promise<T>, ms: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function readyWorkers(url: string): Promise<number> {
  const health = await (await fetch(`${url}/health`)).json() as { workers: { ready: number } };
  return health.workers.ready;
}

/**
 * Kills the GPU worker serving a greedy stream after `killAfterChunks` chunks, with a second GPU worker ready.
 * `tool`: the stream is a forced tool call instead of text.
 */
export async function runGpuKill(
  options: { store: StoreKind; modelPath: string; killAfterChunks?: number; maxTokens?: number; tool?: boolean },
): Promise<KillFigures> {
  const keys = await testKeys();
  const backend = await startBackend(options.store);
  const group = processGroup();
  try {
    const router = await group.router({ ...ROUTER_ENV, ...keys.env, ...backend.env }, { name: "router" });
    const gpu = (name: string) =>
      group.script(name, [
        "workers/gpu/main.ts",
        "--router-url",
        router.url,
        "--model-path",
        options.modelPath,
        "--threads",
        "1",
      ], { AUXOT_GPU_KEY: keys.admin, AUXOT_LOG_LEVEL: "debug" });
    const workers = [gpu("gpu-a"), gpu("gpu-b")];
    await waitFor(async () => await readyWorkers(router.url) === 2, 90_000, "two GPU workers");
    const body: Record<string, unknown> = {
      model: "tiny",
      temperature: 0,
      max_tokens: options.maxTokens ?? 2_500,
      messages: [{ role: "user", content: "Tell me a long story." }],
      ...(options.tool
        ? {
          tools: [{
            type: "function",
            function: {
              name: "lookup",
              parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
            },
          }],
          tool_choice: { type: "function", function: { name: "lookup" } },
        }
        : {}),
    };
    const reference = options.tool ? undefined : await streamChat(router.url, keys.api, body);
    let killedAt: number | undefined;
    let chunksBeforeKill = 0;
    const killAfter = options.killAfterChunks ?? 20;
    const faulted = await streamChat(router.url, keys.api, body, (count, requestId) => {
      if (killedAt !== undefined || count < killAfter) return;
      const victim = servingWorker(workers, requestId);
      if (!victim) return;
      killedAt = performance.now();
      chunksBeforeKill = count;
      victim.signal("SIGKILL");
    });
    const continued = router.lines.filter((l) => l.includes('"job continued"') && l.includes(faulted.requestId));
    return {
      store: options.store,
      reference: reference?.text ?? "",
      faulted,
      exact: reference !== undefined && faulted.text === reference.text,
      killToNextTokenMs: resumedAfter(faulted.arrivals, killedAt),
      chunksBeforeKill,
      continued: continued.length,
      resumedAfterChars: continued[0] ? JSON.parse(continued[0]).textChars : undefined,
      resumedTokens: continued[0] ? JSON.parse(continued[0]).tokens : undefined,
    };
  } finally {
    await group.closeAll();
    await backend.close();
  }
}

export interface FreezeFigures {
  store: StoreKind;
  /** A paced prefill (6 s by default) with a 2 s silence window completed without being declared lost. */
  progressRespected: boolean;
  /** Frozen mid-prefill: the answer completed on the other worker. */
  completedAfterFreeze: boolean;
  /** From SIGSTOP to the router's "job continued" line being read here (includes log relay delay). */
  stopToDeclaredMs?: number;
  silenceMs: number;
}

/** SIGSTOP a scripted worker during a paced prefill (tests/helpers/scripted-engine.ts `prefill`). */
export async function runPrefillFreeze(options: { store: StoreKind; prefillMs?: number }): Promise<FreezeFigures> {
  const prefillMs = options.prefillMs ?? 6_000;
  const keys = await testKeys();
  const backend = await startBackend(options.store);
  const group = processGroup();
  const silenceMs = 2_000;
  try {
    const router = await group.router(
      { ...ROUTER_ENV, ...keys.env, ...backend.env, AUXOT_WORKER_SILENCE: "2s", AUXOT_LOG_LEVEL: "info" },
      { name: "router" },
    );
    const workers: WorkerProcess[] = [
      await group.worker(router.url, keys.admin, { slots: 1, name: "a" }),
      await group.worker(router.url, keys.admin, { slots: 1, name: "b" }),
    ];
    const ask = (prompt: string, onStart?: (id: string) => void) =>
      fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }] }),
      }).then(async (r) => {
        onStart?.(r.headers.get("x-request-id") ?? "");
        return { status: r.status, body: await r.json() as { choices?: { message: { content: string } }[] } };
      });

    // 1. A slow prefill that reports progress, several times the silence window: never declared lost.
    const slow = await ask(`prefill ${prefillMs} slow but alive`);
    const progressRespected = slow.status === 200 && slow.body.choices?.[0].message.content === "slow but alive" &&
      !router.lines.some((l) => l.includes('"job continued"'));

    // 2. The same, frozen 1 s into the prefill: declared lost after the silence, resumed on the other worker.
    const linesBefore = router.lines.length;
    let stoppedAt = 0;
    const frozen = ask(`prefill ${prefillMs} resumed elsewhere`);
    await new Promise((r) => setTimeout(r, 1_000));
    const serving = await waitFor(
      async () => {
        const health = await (await fetch(`${router.url}/api/status`, {
          headers: { authorization: `Bearer ${keys.admin}` },
        })).json() as { workers: { id: string; activeJobs: number }[] };
        const busy = health.workers.find((w) => w.activeJobs > 0);
        return busy ? workers.find((w) => w.id === busy.id) : undefined;
      },
      10_000,
      "the serving worker",
    );
    serving.signal("SIGSTOP");
    stoppedAt = performance.now();
    const declaredAt = await waitFor(
      () => router.lines.slice(linesBefore).some((l) => l.includes('"job continued"')) ? performance.now() : 0,
      30_000,
      "the frozen worker to be declared lost",
    );
    const result = await frozen;
    serving.signal("SIGCONT");
    return {
      store: options.store,
      progressRespected,
      completedAfterFreeze: result.status === 200 &&
        result.body.choices?.[0].message.content === "resumed elsewhere",
      stopToDeclaredMs: declaredAt - stoppedAt,
      silenceMs,
    };
  } finally {
    await group.closeAll();
    await backend.close();
  }
}

export interface KillLoopFigures {
  store: StoreKind;
  kills: number;
  exact: number;
  failed: number;
  latenciesMs: number[];
  p50Ms: number;
  p99Ms: number;
}

/**
 * `kills` streams, each answered by a scripted worker (5 ms a token) that is killed with SIGKILL after ~20 tokens
 * while another worker is ready; a replacement is started after each kill so two stay ready.
 */
export async function runKillLoop(options: { store: StoreKind; kills: number }): Promise<KillLoopFigures> {
  const keys = await testKeys();
  const backend = await startBackend(options.store);
  const group = processGroup();
  try {
    const router = await group.router({ ...ROUTER_ENV, ...keys.env, ...backend.env }, { name: "router" });
    const workers: WorkerProcess[] = [];
    const add = async () => {
      workers.push(
        await group.worker(router.url, keys.admin, { slots: 1, tokenDelayMs: 5, name: `w${workers.length}` }),
      );
    };
    await Promise.all([add(), add()]);
    const latencies: number[] = [];
    let exact = 0, failed = 0;
    for (let i = 0; i < options.kills; i++) {
      const words = Array.from({ length: 120 }, (_, n) => `k${i}w${n}`);
      let killedAt: number | undefined;
      let killing: Promise<void> | undefined;
      const result = await streamChat(router.url, keys.api, {
        model: "m",
        messages: [{ role: "user", content: `echo ${words.join(" ")}` }],
      }, (count, requestId) => {
        if (killedAt !== undefined || count < 20) return;
        const victim = servingWorker(workers, requestId);
        if (!victim) return;
        killedAt = performance.now();
        killing = victim.kill().then(add);
      });
      await killing;
      const latency = resumedAfter(result.arrivals, killedAt);
      if (latency !== undefined) latencies.push(latency);
      if (result.done && !result.error && result.text === words.join(" ") && result.roleChunks === 1) exact++;
      else failed++;
      for (let w = workers.length - 1; w >= 0; w--) if (!workers[w].running) workers.splice(w, 1);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    return {
      store: options.store,
      kills: options.kills,
      exact,
      failed,
      latenciesMs: latencies,
      p50Ms: Math.round(pct(0.5)),
      p99Ms: Math.round(pct(0.99)),
    };
  } finally {
    await group.closeAll();
    await backend.close();
  }
}
