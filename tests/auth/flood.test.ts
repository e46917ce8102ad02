/**
 * Acceptance: a flood of wrong keys at 50/s for 10 s — from one address, then from many — beside a valid API caller
 * and a valid GPU worker whose keys have NOT been verified before (a fresh router and store each time). Both must be
 * served throughout: the worker takes every job, the caller gets every answer. They arrive one second
 * into the flood, while wrong keys are still being hashed (before a role's key is known, each new one costs Argon2id). The caller's latency (p50/p99) and what
 * the flood cost are printed; nothing is asserted on time (the machine is shared). The router sits behind a "trusted
 * proxy" (AUXOT_TRUSTED_PROXY=127.0.0.1) so that addresses can be given by X-Forwarded-For, as a real proxy would.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/app.ts";
import { generateKey } from "../../src/auth/keys.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { startWorker, TEST_ENV, testKeys } from "../helpers/router.ts";

const FLOOD_PER_SECOND = 50;
const FLOOD_SECONDS = 10;

async function floodScenario(addresses: (i: number) => string) {
  const keys = await testKeys();
  const config = loadConfig({ ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "error", AUXOT_TRUSTED_PROXY: "127.0.0.1" });
  const store = new EmbeddedStore({ leaseMs: config.leaseMs });
  const app = createApp({ config, store, log: createLogger("error", () => {}) });
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
    (request, info) => app.fetch(request, { client: (info.remoteAddr as Deno.NetAddr).hostname }),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const floodStatus = new Map<number, number>();
  const floodStart = performance.now();
  const floodRequests: Promise<void>[] = [];
  let sent = 0;
  const floodTimer = setInterval(() => {
    const due = Math.floor((performance.now() - floodStart) / 1000 * FLOOD_PER_SECOND);
    while (sent < due && sent < FLOOD_PER_SECOND * FLOOD_SECONDS) {
      const i = sent++;
      // Wrong keys of both roles the flood could hurt: API keys on the API, worker keys on the worker endpoint.
      const worker = i % 3 === 0;
      floodRequests.push(
        fetch(`${url}${worker ? "/worker/v1/poll" : "/v1/models"}`, {
          method: worker ? "POST" : "GET",
          headers: {
            authorization: `Bearer ${generateKey(worker ? "admin" : "api")}`,
            "x-forwarded-for": addresses(i),
            ...(worker ? { "content-type": "application/json" } : {}),
          },
          ...(worker ? { body: "{}" } : {}),
        }).then(async (r) => {
          await r.body?.cancel();
          floodStatus.set(r.status, (floodStatus.get(r.status) ?? 0) + 1);
        }),
      );
    }
  }, 20);

  // The valid worker and caller arrive one second into the flood, while its keys are being hashed.
  await new Promise((r) => setTimeout(r, 1_000));
  const engine = new ScriptedEngine({ slots: 2 });
  const worker = startWorker({ url }, engine, { key: keys.admin, pollWaitMs: 1_000 });
  const latencies: number[] = [];
  const failures: string[] = [];
  while (performance.now() - floodStart < FLOOD_SECONDS * 1000) {
    const t0 = performance.now();
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${keys.api}`,
        "content-type": "application/json",
        "x-forwarded-for": "203.0.113.50",
      },
      body: JSON.stringify({ model: "any", messages: [{ role: "user", content: "echo hello there" }] }),
    });
    const body = await response.json();
    latencies.push(performance.now() - t0);
    if (response.status !== 200 || body.choices?.[0]?.message?.content !== "hello there") {
      failures.push(`${response.status} ${JSON.stringify(body).slice(0, 200)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(floodTimer);
  await Promise.all(floodRequests);
  await worker.stop();
  controller.abort();
  await server.finished;
  await store.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    served: latencies.length - failures.length,
    failures,
    workerJobs: engine.received.length,
    p50: pct(0.5),
    p99: pct(0.99),
    max: latencies.at(-1)!,
    floodSent: sent,
    floodStatus: Object.fromEntries(floodStatus),
    argon2: app.ctx.auth.stats.argon2Verifications,
  };
}

for (
  const [name, addresses] of [
    ["one address", () => "198.51.100.1"],
    ["many addresses", (i: number) => `198.51.${100 + (i % 4)}.${i % 250}`],
  ] as const
) {
  Deno.test(`a flood of wrong keys from ${name} at 50/s for 10 s: the valid caller and worker are served`, async () => {
    const r = await floodScenario(addresses);
    console.log(
      `flood (${name}): ${r.floodSent} wrong keys ${JSON.stringify(r.floodStatus)}, Argon2id runs ${r.argon2}; ` +
        `valid caller: ${r.served} answers, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ` +
        `max ${r.max.toFixed(1)} ms; worker jobs ${r.workerJobs}`,
    );
    assert.deepEqual(r.failures, [], "every request of the valid caller was answered");
    assert.ok(r.served >= 10, `${r.served} answers`);
    assert.equal(r.workerJobs, r.served, "the valid worker served every job");
    assert.ok(r.floodSent >= FLOOD_PER_SECOND * FLOOD_SECONDS * 0.9, `${r.floodSent} sent`);
    assert.equal(r.floodStatus[200] ?? 0, 0, "no wrong key got in");
  });
}
