/**
 * /api/status on the Upstash store shows what the store costs: commands in the last hour (every instance's flushed
 * counts) and the month's projection against Upstash's free tier (500K commands). Two router instances share one
 * database: the figure is fleet-wide.
 */
import assert from "node:assert/strict";
import type { StatusReport } from "../../src/ops/status.ts";
import { startDenoRouter } from "../helpers/router.ts";
import { withBackend } from "./upstash-backend.ts";

async function status(url: string, key: string): Promise<StatusReport> {
  const response = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200);
  return await response.json();
}

Deno.test("status: store commands in the last hour and the month's projection against the free tier", async () => {
  await withBackend(async (backend) => {
    const storeA = backend.store();
    const storeB = backend.store();
    const a = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" }, { store: storeA });
    const b = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" }, { store: storeB });
    try {
      await status(a.url, a.keys.admin); // flushes A's counts so far
      const first = await status(b.url, b.keys.admin);
      const cost = first.storeCost!;
      assert.ok(cost, "storeCost is reported on Upstash");
      // Every command A and B sent before their flushes is counted once, fleet-wide.
      assert.ok(cost.commandsLastHour > 0 && cost.commandsLastHour <= storeA.commandCount + storeB.commandCount);
      assert.equal(cost.freeTierPerMonth, 500_000);
      assert.equal(cost.projectedPerMonth, Math.round(cost.commandsLastHour / 60 * 30.44 * 24 * 60));
      assert.equal(cost.shareOfFreeTier, Math.round(cost.projectedPerMonth / 500_000 * 1000) / 1000);
      const later = await status(a.url, a.keys.admin);
      assert.ok(later.storeCost!.commandsLastHour > cost.commandsLastHour, "later views count the views before");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("status: no store cost for the embedded store (nothing is billed)", async () => {
  const router = await startDenoRouter({ AUXOT_LOG_LEVEL: "warn" });
  try {
    assert.equal((await status(router.url, router.keys.admin)).storeCost, undefined);
  } finally {
    await router.close();
  }
});
