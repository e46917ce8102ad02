/**
 * GET /api/status over real HTTP with a real long-polling worker: admin-only, what it reports about workers, slots,
 * queue and recent jobs, that it carries no prompt or output text and no secrets, and that one call costs a small
 * fixed number of store commands whatever the fleet size.
 */
import assert from "node:assert/strict";
import { describeConfig } from "../../src/config.ts";
import type { StatusReport } from "../../src/ops/status.ts";
import { eventually, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { getJson, type OpsRouter, startOpsRouter } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function status(router: OpsRouter): Promise<StatusReport> {
  const { status, body } = await getJson(`${router.url}/api/status`, router.keys.admin);
  assert.equal(status, 200);
  return body as StatusReport;
}

function ask(router: OpsRouter, text: string): Promise<Response> {
  return fetch(`${router.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: text }] }),
  });
}

Deno.test({ name: "status: admin key only", ...opts }, async () => {
  const router = await startOpsRouter();
  try {
    assert.equal((await getJson(`${router.url}/api/status`)).status, 401);
    assert.equal((await getJson(`${router.url}/api/status`, router.keys.api)).status, 401);
    assert.equal((await getJson(`${router.url}/api/status`, router.keys.tools)).status, 401);
    const report = await status(router);
    assert.equal(report.health.status, "degraded");
    assert.match(report.health.reason ?? "", /No worker/);
    assert.deepEqual(report.workers, []);
  } finally {
    await router.close();
  }
});

Deno.test(
  { name: "status: workers, slots, running jobs and recent jobs, without prompts or secrets", ...opts },
  async () => {
    const router = await startOpsRouter();
    const worker = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: router.keys.admin });
    try {
      const idle = await eventually(
        async () => {
          const r = await status(router);
          return r.workers[0]?.ready ? r : undefined;
        },
        10_000,
        "a ready worker",
      );
      const w = idle.workers[0];
      assert.equal(w.kind, "gpu");
      assert.equal(w.slots, 2);
      assert.equal(w.free, 2);
      assert.equal(w.backend, "scripted");
      assert.equal(w.model, "custom:tiny-test");
      assert.ok(w.lastSeenAt <= idle.time);
      assert.deepEqual(idle.slots, { total: 2, free: 2 });
      assert.equal(idle.health.status, "ok");
      assert.deepEqual(idle.config, JSON.parse(JSON.stringify(describeConfig(router.ctx.config))));

      const slow = ask(router, "slow 1500 zebra-secret-answer");
      slow.catch(() => {});
      const busy = await eventually(
        async () => {
          const r = await status(router);
          return r.running === 1 && r.recentJobs[0]?.state === "running" ? r : undefined;
        },
        10_000,
        "a running job",
      );
      assert.equal(busy.workers[0].activeJobs, 1);
      assert.equal(busy.recentJobs[0].completionTokens, undefined);
      assert.equal((await slow).status, 200);
      await (await ask(router, "echo quagga-prompt-marker")).json();

      const after = await status(router);
      const [last, first] = after.recentJobs;
      assert.equal(last.state, "done");
      assert.equal(last.completionTokens, 1);
      assert.equal(last.model, "scripted");
      assert.equal(first.state, "done");
      assert.ok(first.ttftMs !== undefined && first.queueMs !== undefined && first.durationMs !== undefined);
      assert.equal(after.counters.jobs.completed, 2);
      assert.equal(after.counters.tokens.completion, 2);
      assert.ok(after.counters.requests.byStatusClass["2xx"] >= 2);
      assert.equal(after.latency.ttft.count, 2);

      const text = JSON.stringify(after);
      for (const secret of ["zebra-secret", "quagga-prompt", router.keys.admin, router.keys.api, "$argon2id"]) {
        assert.ok(!text.includes(secret), `the status report must not contain ${secret.slice(0, 12)}`);
      }
    } finally {
      await worker.stop();
      await router.close();
    }
  },
);

Deno.test(
  { name: "status: a small fixed number of store commands per call, whatever the fleet", ...opts },
  async () => {
    const router = await startOpsRouter();
    const workers: ReturnType<typeof startWorker>[] = [];
    try {
      await status(router); // the admin key is verified once, then recognised without the store
      // Workers' polls also count: the least of a few calls is the status API's own cost.
      const cost = async () => {
        const costs = [];
        for (let i = 0; i < 5; i++) {
          const before = router.store.commandCount;
          await status(router);
          costs.push(router.store.commandCount - before);
        }
        return Math.min(...costs);
      };
      const empty = await cost();
      assert.ok(empty <= 3, `status cost ${empty} store commands`);
      for (let i = 0; i < 3; i++) {
        workers.push(startWorker(router, new ScriptedEngine({ slots: 4 }), { key: router.keys.admin }));
      }
      await eventually(async () => (await status(router)).workers.length === 3, 10_000, "three workers");
      await (await ask(router, "echo one")).json();
      assert.equal(await cost(), empty);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await router.close();
    }
  },
);
