/**
 * Concurrency load against the router under real workerd on the Upstash store (bridge + redis-server): many
 * streaming and non-streaming requests at once, served by real long-polling workers (the scripted engine behind the
 * real WorkerLoop). Each request asks for an answer unique to it, so the load can tell a complete answer from one
 * with duplicated or missing tokens, an explicit error, or a request workerd cancelled ("Worker's code had hung").
 * Used by tests/workers/concurrency-workerd.test.ts (64 + 64), tests/workers/sustained-load-workerd.test.ts (64 callers
 * for 40 s) and by the benchmark (256 streams).
 */
import assert from "node:assert/strict";
import { startWorkersStack } from "../fixtures/workers-stack.ts";
import { type RunningWorker, startWorker, TEST_ENV, testKeys } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { type Outcome, streamCall, uniqueWords } from "../reliability/caller.ts";
import type { WorkersStack } from "../fixtures/workers-stack.ts";

export interface ConcurrencyShape {
  streams: number;
  nonStreams: number;
  /** Words per answer (each a token). */
  words: number;
  /** Scripted engine pause per token (ms). */
  tokenDelayMs: number;
  workers: number;
  slotsPerWorker: number;
  /** Per-request deadline of the caller (a hang past it counts). */
  deadlineMs: number;
  /** Keep every caller sending one request after another for this long (default: one request each). */
  durationMs?: number;
}

export interface ConcurrencyResult {
  outcomes: Outcome[];
  /** outcome kind → count, streams and non-streams together. */
  tally: Record<string, number>;
  /** Requests that failed, with what they said (at most 10). */
  failures: string[];
  /** workerd log lines that mention a hung or cancelled request, or I/O on behalf of a different request. */
  hungLogLines: string[];
  seconds: number;
  /** Store commands counted by the bridge during the load. */
  bridgeCommands?: number;
}

/** A non-streaming call with the same unique-answer check as `streamCall`. */
async function plainCall(url: string, key: string, words: string[], deadlineMs: number): Promise<Outcome> {
  const expected = words.map((w) => `${w} `).join("");
  const timeout = AbortSignal.timeout(deadlineMs);
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `slow 0 ${words.join(" ")}` }] }),
      signal: timeout,
    });
    const text = await response.text();
    const jobId = response.headers.get("x-request-id") ?? undefined;
    if (!response.ok) return { kind: "failed", jobId, status: response.status, detail: text.slice(0, 300) };
    const content = JSON.parse(text).choices?.[0]?.message?.content;
    if (content !== expected) return { kind: "duplicated", jobId, detail: String(content).slice(0, 200) };
    return { kind: "completed", jobId };
  } catch (err) {
    if (timeout.aborted) return { kind: "hung" };
    return { kind: "connection_lost", detail: String(err) };
  }
}

/** Starts a router under workerd on `stack`, `shape.workers` workers, runs the load, stops everything it started. */
export async function runConcurrency(stack: WorkersStack, shape: ConcurrencyShape): Promise<ConcurrencyResult> {
  const keys = await testKeys();
  const router = await stack.startRouter({
    ...TEST_ENV,
    ...keys.env,
    AUXOT_LOG_LEVEL: "warn",
    AUXOT_MAX_PARALLEL: String(shape.slotsPerWorker),
  });
  const workers: RunningWorker[] = [];
  try {
    for (let i = 0; i < shape.workers; i++) {
      const engine = new ScriptedEngine({ slots: shape.slotsPerWorker, tokenDelayMs: shape.tokenDelayMs });
      workers.push(startWorker(router, engine, { key: keys.admin, pollWaitMs: 20_000 }));
    }
    await waitForReadyWorkers(router.url, shape.workers);
    const run = crypto.randomUUID().slice(0, 8);
    // The API key's first use costs an Argon2id verification (a burst of first uses is throttled by design):
    // one request first, as a real client's first call would be.
    const warm = await plainCall(router.url, keys.api, [`${run}-warm`], shape.deadlineMs);
    if (warm.kind !== "completed") throw new Error(`warm-up request failed: ${JSON.stringify(warm)}`);
    const began = performance.now();
    const until = began + (shape.durationMs ?? 0);
    const outcomes: Outcome[] = [];
    // Each caller sends one request, then more until `durationMs` has passed; every request's answer is unique.
    const caller = async (stream: boolean, i: number) => {
      for (let round = 0; round === 0 || performance.now() < until; round++) {
        const words = uniqueWords(`${run}${stream ? "s" : "n"}${round}`, i, shape.words);
        outcomes.push(
          stream
            ? await streamCall({
              url: router.url,
              key: keys.api,
              flavour: "openai",
              words,
              deadlineMs: shape.deadlineMs,
            })
            : await plainCall(router.url, keys.api, words, shape.deadlineMs),
        );
      }
    };
    await Promise.all([
      ...Array.from({ length: shape.streams }, (_, i) => caller(true, i)),
      ...Array.from({ length: shape.nonStreams }, (_, i) => caller(false, i)),
    ]);
    const seconds = (performance.now() - began) / 1000;
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[o.kind] = (tally[o.kind] ?? 0) + 1;
    const failures = outcomes.filter((o) => o.kind !== "completed").slice(0, 10)
      .map((o) => `${o.kind} ${o.status ?? ""} ${o.detail ?? ""}`);
    const logFile = Deno.env.get("AUXOT_TEST_WORKERD_LOG");
    if (logFile) await Deno.writeTextFile(logFile, router.logs());
    const hungLogLines = router.logs().split("\n").filter((line) => /hung|cancel|different request/i.test(line)).slice(
      0,
      20,
    );
    return { outcomes, tally, failures, hungLogLines, seconds };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await router.stop();
  }
}

/**
 * Runs `shape` on a fresh stack and checks that the load held: every answer complete and exact (none failed, hung,
 * cut or duplicated), and no workerd log line about a hung request or I/O on behalf of a different request.
 */
export async function assertLoadHolds(shape: ConcurrencyShape): Promise<void> {
  const stack = await startWorkersStack();
  try {
    const result = await runConcurrency(stack, shape);
    console.log(JSON.stringify({ tally: result.tally, seconds: result.seconds.toFixed(1) }));
    assert.deepEqual(result.failures, []);
    assert.deepEqual(result.hungLogLines, []);
    assert.equal(result.tally.completed, result.outcomes.length);
  } finally {
    await stack.close();
  }
}

async function waitForReadyWorkers(url: string, count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await fetch(`${url}/health`);
    const health = await response.json() as { workers?: { ready?: number } };
    if ((health.workers?.ready ?? 0) >= count) return;
    if (Date.now() > deadline) throw new Error(`fewer than ${count} workers became ready: ${JSON.stringify(health)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
