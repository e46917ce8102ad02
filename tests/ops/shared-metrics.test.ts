/**
 * Counters across router instances: two routers, each with its own Upstash store client on the same Redis (a real
 * redis-server behind the Upstash REST bridge fixture), as two machines or two Workers isolates would be. Requests
 * served by one show in the other's status API and /metrics, through the store's sums.
 */
import assert from "node:assert/strict";
import { metricsText } from "../../src/ops/metrics-endpoint.ts";
import type { StatusReport } from "../../src/ops/status.ts";
import { UpstashStore } from "../../src/store/upstash/store.ts";
import { startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";
import { eventually, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { getJson, type OpsRouter, parseMetrics, sampleValue, startOpsRouter } from "./helpers.ts";

Deno.test({
  name: "shared metrics: requests through one instance are counted in the other's status and /metrics",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const redis = await startRedisServer();
  const token = crypto.randomUUID();
  const bridge = await startUpstashBridge({ redisPort: redis.port, token });
  const prefix = `ops-${crypto.randomUUID().slice(0, 8)}`;
  const stores = [0, 1].map(() => new UpstashStore({ url: bridge.url, token, prefix, maxBlockMs: 2_000 }));
  const routers: OpsRouter[] = [];
  let worker: ReturnType<typeof startWorker> | undefined;
  try {
    for (const store of stores) routers.push(await startOpsRouter({}, { store, flushIntervalMs: 50 }));
    const [a, b] = routers;
    worker = startWorker(a, new ScriptedEngine(), { key: a.keys.admin });
    const status = async (r: OpsRouter) => (await getJson(`${r.url}/api/status`, r.keys.admin)).body as StatusReport;
    await eventually(async () => (await status(b)).workers[0]?.ready, 15_000, "the worker, seen from b");

    for (const words of ["echo one two", "echo three four five"]) {
      const response = await fetch(`${a.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${a.keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: words }] }),
      });
      assert.equal(response.status, 200, await response.text());
      await response.text().catch(() => {});
    }
    const seen = await eventually(
      async () => {
        const r = await status(b);
        return r.counters.jobs.completed === 2 ? r : undefined;
      },
      10_000,
      "a's jobs counted in b's status",
    );
    assert.equal(seen.instance.countersShared, true);
    assert.equal(seen.instance.store, "upstash");
    assert.equal(seen.counters.tokens.completion, 5);
    assert.ok(seen.counters.requests.byApi.openai >= 2);
    assert.ok(seen.counters.storeCommands > 0);
    // Recent jobs are per instance: b served none.
    assert.deepEqual(seen.recentJobs, []);

    const families = parseMetrics(await metricsText(b.ctx));
    assert.equal(sampleValue(families, "auxot_jobs_total", { outcome: "completed" }), 2);
    assert.equal(sampleValue(families, "auxot_requests_total", { api: "openai", status: "200" }), 2);
    assert.equal(sampleValue(families, "auxot_workers", { kind: "gpu" }), 1);
  } finally {
    await worker?.stop();
    for (const r of routers) await r.close();
    for (const s of stores) await s.close();
    await bridge.close();
    await redis.stop();
  }
});
