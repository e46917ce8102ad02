/**
 * The key verifier under real workerd (the Workers bundle, its Upstash store on redis-server behind the REST bridge),
 * where each wait must be the request's own: a flood of wrong keys (25/s for 5 s, from several addresses given as
 * CF-Connecting-IP, as Cloudflare would) beside a valid caller and a worker whose keys were never verified. Every
 * valid request is answered; the wrong keys get 401 or 429 and never 5xx; Argon2id runs stay few (the store keeps the
 * verified digest). Latency is printed, not asserted.
 */
import assert from "node:assert/strict";
import { generateKey } from "../../src/auth/keys.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { startWorkersStack } from "../fixtures/workers-stack.ts";
import { TEST_ENV, testKeys } from "../helpers/router.ts";

Deno.test({
  name: "workerd: wrong keys flood beside a valid caller and worker whose keys were never verified",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const keys = await testKeys();
  const stack = await startWorkersStack();
  const router = await stack.startRouter({ ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" });
  try {
    const floodStatuses: Record<number, number> = {};
    const started = performance.now();
    const flood: Promise<void>[] = [];
    const timer = setInterval(() => {
      for (let i = 0; i < 2; i++) {
        const n = flood.length;
        flood.push(
          fetch(`${router.url}/v1/models`, {
            headers: { authorization: `Bearer ${generateKey("api")}`, "cf-connecting-ip": `198.51.100.${n % 5}` },
          }).then(async (r) => {
            await r.body?.cancel();
            floodStatuses[r.status] = (floodStatuses[r.status] ?? 0) + 1;
          }),
        );
      }
    }, 80);
    await new Promise((r) => setTimeout(r, 500));
    const latencies: number[] = [];
    const failures: string[] = [];
    const worker = fetch(`${router.url}/worker/v1/poll`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${keys.admin}`,
        "content-type": "application/json",
        "cf-connecting-ip": "203.0.113.9",
      },
      body: JSON.stringify({
        protocol: PROTOCOL_VERSION,
        worker: { id: "workerd-flood-worker", kind: "gpu", slots: 1, free: 0 },
        waitMs: 0,
      }),
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
    while (performance.now() - started < 5_000) {
      const t0 = performance.now();
      const r = await fetch(`${router.url}/v1/models`, {
        headers: { authorization: `Bearer ${keys.api}`, "cf-connecting-ip": "203.0.113.50" },
      });
      const text = await r.text();
      latencies.push(performance.now() - t0);
      if (r.status !== 200) failures.push(`${r.status} ${text.slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    clearInterval(timer);
    await Promise.all(flood);
    const polled = await worker;
    latencies.sort((a, b) => a - b);
    const metrics = await (await fetch(`${router.url}/metrics`, {
      headers: { authorization: `Bearer ${keys.admin}` },
    })).text();
    const argon2 = Number(/^auxot_auth_argon2_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
    console.log(
      `workerd flood: ${flood.length} wrong keys ${JSON.stringify(floodStatuses)}; valid caller ${latencies.length} ` +
        `answers, p50 ${latencies[Math.floor(latencies.length / 2)].toFixed(1)} ms, p99 ${
          latencies[Math.floor(latencies.length * 0.99)].toFixed(1)
        } ms; worker poll ${polled.status}; Argon2id runs ${argon2}`,
    );
    assert.deepEqual(failures, [], "every request of the valid caller was answered");
    assert.equal(polled.status, 200, polled.body);
    assert.ok(Object.keys(floodStatuses).every((s) => s === "401" || s === "429"), JSON.stringify(floodStatuses));
    assert.ok(argon2 <= 20, `${argon2} Argon2id runs`);
  } finally {
    await router.stop();
    await stack.close();
  }
});
