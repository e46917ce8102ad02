/**
 * Issue 4's acceptance, short version for CI: two router processes under Deno and one router under workerd share
 * one Upstash store (REST bridge + redis-server); workers poll one Deno instance, callers use the other and workerd.
 * A worker and the callers' instance are killed with SIGKILL and redis-server restarts during the load. Every
 * request completes or fails explicitly — none hangs, none repeats output — nothing is left running, and no key of a
 * finished job survives the store's sweep once its TTL passed (tests/reliability/multi.ts).
 */
import assert from "node:assert/strict";
import { runMultiInstance } from "./multi.ts";
import { MAX_FINISHED_TTL_MS } from "./verdict.ts";

Deno.test("reliability: three instances (Deno, Deno, workerd) on one store survive worker, instance and Redis faults", async () => {
  const f = await runMultiInstance({ requests: 150 });
  console.log(
    `via Deno ${JSON.stringify(f.byInstance.deno)}; via workerd ${JSON.stringify(f.byInstance.workerd)}; ` +
      `re-queued then completed ${f.requeuedThenCompleted}; strikes: ${f.strikes.join(", ")}`,
  );
  const t = f.tally;
  assert.equal(t.completed + t.failed + t.connection_lost + t.truncated + t.duplicated + t.malformed + t.hung, 150);
  assert.equal(t.hung, 0, "hung requests");
  assert.equal(t.duplicated, 0, "wrong or duplicated output");
  assert.equal(t.truncated, 0, "streams that ended without a terminator or an error");
  assert.equal(t.malformed, 0, JSON.stringify(f.failures));
  assert.ok(f.byInstance.deno.completed > 0 && f.byInstance.workerd.completed > 0);
  assert.equal(f.strikes.length, 3, `strikes: ${f.strikes.join(", ")}`);
  assert.equal(f.leaks.jobs, 0, "jobs left running or queued");
  assert.equal(f.leaks.busySlots, 0, "busy slots on idle workers");
  assert.equal(f.leaks.redisLiveIndexEntries, 0);
  assert.equal(f.leaks.redisKeysWithoutTtl, 0);
  assert.ok(f.leaks.redisLongestJobTtlMs <= MAX_FINISHED_TTL_MS, `job keys live ${f.leaks.redisLongestJobTtlMs} ms`);
  assert.equal(f.leaks.redisJobKeysAfterSweep, 0, "keys of finished jobs after their TTL");
});
