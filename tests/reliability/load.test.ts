/**
 * Load, short version for CI: 1,000 concurrent streaming callers (OpenAI and Anthropic, half each) against a router
 * process with fast scripted worker processes — every answer exact, memory bounded, no connection left open once
 * the callers hang up, nothing left running. Then the same kind of load against an in-process router and workers
 * with Deno's sanitizers on: a timer, op or resource the router leaves behind after it closes fails that test.
 */
import assert from "node:assert/strict";
import { startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { type Flavour, runLoad, uniqueWords } from "./caller.ts";
import { runStreamingLoad } from "./load.ts";

/** Growth of the router's resident memory a 1,000-caller wave may cause (MB): generous, but bounded. */
const MAX_GROWTH_MB = 400;

Deno.test("reliability: 1,000 concurrent streaming callers — no errors, bounded memory, no leaked sockets", async () => {
  const f = await runStreamingLoad({ store: "embedded", callers: 1_000, waves: 1 });
  console.log(
    `1,000 callers: ${JSON.stringify(f.tally)}; RSS ${f.rssBeforeMb.toFixed(0)} → peak ${f.peakRssMb.toFixed(0)} → ` +
      `${f.rssAfterMb.toFixed(0)} MB; sockets ${f.socketsBefore} → peak ${f.peakSockets} → ${f.socketsAfter}; ` +
      `caller connections left ${f.callerConnectionsAfter} of ${f.callerConnectionsClosed}`,
  );
  assert.equal(f.tally.completed, 1_000, JSON.stringify(f.tally));
  assert.ok(f.peakRssMb - f.rssBeforeMb < MAX_GROWTH_MB, `peak RSS grew by ${f.peakRssMb - f.rssBeforeMb} MB`);
  assert.equal(f.closeWaitAfter, 0, "router sockets left in CLOSE_WAIT");
  assert.ok(f.callerConnectionsClosed > 0);
  assert.equal(f.callerConnectionsAfter, 0, "router connections to callers that hung up");
  assert.equal(f.leakedJobs, 0);
  assert.equal(f.leakedSlots, 0);
});

Deno.test("reliability: an in-process router under streaming load leaves no timer, op or resource behind", async () => {
  const router = await startDenoRouter();
  const workers = [0, 1].map(() =>
    startWorker(router, new ScriptedEngine({ slots: 32 }), { key: router.keys.admin, pollWaitMs: 1_000 })
  );
  const client = Deno.createHttpClient({});
  try {
    const { tally } = await runLoad({ n: 300, concurrency: 300 }, (i) => ({
      url: router.url,
      key: router.keys.api,
      flavour: (i % 2 === 0 ? "openai" : "anthropic") as Flavour,
      words: uniqueWords("inproc", i),
      deadlineMs: 60_000,
      client,
    }));
    assert.equal(tally.completed, 300, JSON.stringify(tally));
  } finally {
    client.close();
    await Promise.all(workers.map((w) => w.stop()));
    await router.close();
  }
});
