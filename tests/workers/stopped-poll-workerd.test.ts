/**
 * A worker that stops while its poll is parked must not stall the next job. Under workerd a client that hangs up
 * does not abort `request.signal`: the stopped worker's poll runs on, its BLPOP (first in Redis's queue of blocked
 * clients) takes the next job's wake token, and the poll claims the job for the gone worker. Before the fix the job
 * waited for its lease to end and a sweep (31 s measured; the live worker's own BLPOP sleeps up to AUXOT_POLL_WAIT,
 * 60 s here). Now the caller, alive and waiting for its job to start, takes
 * back a claim whose worker never posted and wakes the lane (docs/store.md, "Lost wake-ups"): the job completes
 * within seconds (7 s measured; the bound below is 20 s).
 */
import assert from "node:assert/strict";
import { startWorkersStack, type WorkersStack } from "../fixtures/workers-stack.ts";
import { startWorker, TEST_ENV, testKeys } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { streamCall, uniqueWords } from "../reliability/caller.ts";

/** Redis's count of clients parked in a blocking command, asked through the bridge. */
async function blockedClients(stack: WorkersStack): Promise<number> {
  const response = await fetch(stack.redisUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.redisToken}` },
    body: JSON.stringify(["INFO", "clients"]),
  });
  const { result } = await response.json();
  return Number(/blocked_clients:(\d+)/.exec(String(result))?.[1] ?? -1);
}

async function untilBlocked(stack: WorkersStack, count: number): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await blockedClients(stack) === count) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`redis never reported ${count} blocked clients`);
}

Deno.test("workerd + Upstash: a job starts in seconds after a parked worker stopped (its BLPOP left orphaned)", async () => {
  const stack = await startWorkersStack();
  const keys = await testKeys();
  const router = await stack.startRouter({
    ...TEST_ENV,
    ...keys.env,
    AUXOT_LOG_LEVEL: "warn",
    AUXOT_POLL_WAIT: "60s",
  });
  const stopped = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: keys.admin, pollWaitMs: 60_000 });
  let live: ReturnType<typeof startWorker> | undefined;
  try {
    await untilBlocked(stack, 1); // the first worker is parked in its poll's BLPOP
    await stopped.stop(); // its poll's HTTP request is dropped; workerd does not abort the store command
    live = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: keys.admin, pollWaitMs: 60_000 });
    await untilBlocked(stack, 2); // the live worker parks behind the orphaned BLPOP
    const started = performance.now();
    // 20 s: far below the 60 s the live worker's BLPOP would sleep if the job's only wake token were lost.
    const outcome = await streamCall({
      url: router.url,
      key: keys.api,
      flavour: "openai",
      words: uniqueWords("orphan", 0),
      deadlineMs: 20_000,
    });
    console.log(JSON.stringify({ outcome: outcome.kind, seconds: ((performance.now() - started) / 1000).toFixed(1) }));
    assert.equal(outcome.kind, "completed");
  } finally {
    await live?.stop();
    await stopped.stop();
    await router.stop();
    await stack.close();
  }
});
