/**
 * /metrics read by a real Prometheus text-format parser while requests flow through a real router and a real
 * long-polling worker; counters summed across instances through a real store; the store-command cost of a scrape.
 */
import assert from "node:assert/strict";
import { Metrics } from "../../src/metrics.ts";
import { metricsText } from "../../src/ops/metrics-endpoint.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { eventually, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { histogramCount, parseMetrics, sampleValue, startOpsRouter } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function chat(url: string, key: string, text: string, stream = false): Promise<number> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: text }], stream }),
  });
  await response.body?.cancel().catch(() => {});
  if (!stream) await response.text().catch(() => "");
  return response.status;
}

async function scrape(url: string, key?: string) {
  const response = await fetch(`${url}/metrics`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const text = await response.text();
  return { status: response.status, type: response.headers.get("content-type"), text };
}

Deno.test(
  { name: "metrics: parsed by a Prometheus parser; counters and histograms move as requests flow", ...opts },
  async () => {
    const router = await startOpsRouter();
    const worker = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: router.keys.admin });
    try {
      await eventually(async () => (await router.store.fleet()).workers.some((w) => w.info.loaded), 10_000, "worker");
      const before = parseMetrics((await scrape(router.url, router.keys.admin)).text);
      assert.equal(sampleValue(before, "auxot_workers", { kind: "gpu" }), 1);
      assert.equal(sampleValue(before, "auxot_slots", { kind: "gpu" }), 2);

      const full = await fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "echo one two three four" }] }),
      });
      assert.equal(full.status, 200);
      await full.json();
      const streamed = await fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "echo a b c" }], stream: true }),
      });
      assert.match(await streamed.text(), /\[DONE\]/);
      assert.equal(await chat(router.url, "rtr_" + "x".repeat(43), "echo no"), 401);

      const scraped = await scrape(router.url, router.keys.admin);
      assert.equal(scraped.status, 200);
      assert.match(scraped.type ?? "", /^text\/plain; version=0\.0\.4/);
      const after = parseMetrics(scraped.text);
      const moved = (name: string, labels: Record<string, string>) =>
        sampleValue(after, name, labels) - sampleValue(before, name, labels);
      assert.equal(moved("auxot_requests_total", { api: "openai", status: "200" }), 2);
      assert.equal(moved("auxot_requests_total", { api: "openai", status: "401" }), 1);
      assert.equal(moved("auxot_auth_failures_total", { reason: "rejected" }), 1);
      assert.equal(moved("auxot_jobs_total", { outcome: "queued" }), 2);
      assert.equal(moved("auxot_jobs_total", { outcome: "completed" }), 2);
      assert.equal(moved("auxot_tokens_total", { kind: "completion" }), 7);
      assert.ok(moved("auxot_tokens_total", { kind: "prompt" }) > 0);
      assert.equal(histogramCount(after, "auxot_time_to_first_token_seconds"), 2);
      assert.equal(histogramCount(after, "auxot_queue_wait_seconds"), 2);
      assert.equal(after.get("auxot_time_to_first_token_seconds")?.type, "HISTOGRAM");
      assert.equal(after.get("auxot_requests_total")?.type, "COUNTER");
      assert.equal(after.get("auxot_slots_free")?.type, "GAUGE");
    } finally {
      await worker.stop();
      await router.close();
    }
  },
);

Deno.test({ name: "metrics: admin key required unless AUXOT_METRICS_PUBLIC=true", ...opts }, async () => {
  const closed = await startOpsRouter();
  try {
    assert.equal((await scrape(closed.url)).status, 401);
    assert.equal((await scrape(closed.url, closed.keys.api)).status, 401);
    assert.equal((await scrape(closed.url, closed.keys.admin)).status, 200);
  } finally {
    await closed.close();
  }
  const open = await startOpsRouter({ AUXOT_METRICS_PUBLIC: "true" });
  try {
    const scraped = await scrape(open.url);
    assert.equal(scraped.status, 200);
    parseMetrics(scraped.text);
  } finally {
    await open.close();
  }
});

Deno.test(
  { name: "metrics: the full endpoint renders fleet gauges, store commands and a busy slot", ...opts },
  async () => {
    const router = await startOpsRouter();
    const worker = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: router.keys.admin });
    try {
      await eventually(async () => (await router.store.fleet()).workers.some((w) => w.info.loaded), 10_000, "worker");
      const pending = chat(router.url, router.keys.api, "slow 1500 done");
      const busy = await eventually(
        async () => {
          const families = parseMetrics(await metricsText(router.ctx));
          return sampleValue(families, "auxot_jobs_running") === 1 ? families : undefined;
        },
        10_000,
        "a running job",
      );
      assert.equal(sampleValue(busy, "auxot_workers_ready", { kind: "gpu" }), 1);
      assert.ok(sampleValue(busy, "auxot_store_commands_total", { store: "embedded" }) > 0);
      assert.equal(await pending, 200);
    } finally {
      await worker.stop();
      await router.close();
    }
  },
);

Deno.test(
  { name: "metrics: shared counters are summed in the store, flushed in one batched call", ...opts },
  async () => {
    const store = new EmbeddedStore();
    const background: Promise<unknown>[] = [];
    const isolate = () => {
      const m = new Metrics();
      m.attach(store, { background: (p) => background.push(p), shared: true, flushIntervalMs: 20 });
      return m;
    };
    const a = isolate();
    const b = isolate();
    const commandsBefore = store.commandCount;
    for (let i = 0; i < 5; i++) a.requests.inc({ api: "openai", status: "200" });
    b.requests.inc({ api: "openai", status: "200" }, 3);
    b.tokens.inc({ kind: "completion" }, 42);
    b.toolCalls.inc({ tool: "web search!", outcome: "ok" });
    await Promise.all(background);
    // One addCounters per instance, however many increments.
    assert.equal(store.commandCount - commandsBefore, 2);

    const reader = isolate();
    const totals = await reader.counterTotals();
    assert.equal(totals['auxot_requests_total{api="openai",status="200"}'], 8);
    assert.equal(totals['auxot_tokens_total{kind="completion"}'], 42);
    const families = parseMetrics(reader.renderWith(totals));
    assert.equal(sampleValue(families, "auxot_requests_total", { api: "openai", status: "200" }), 8);
    assert.equal(sampleValue(families, "auxot_tool_calls_total", { tool: "web_search_", outcome: "ok" }), 1);
    // Each flush reports the store commands issued since the last one (here: the first flush, seen by the second).
    assert.ok(sampleValue(families, "auxot_store_commands_total", { store: "embedded" }) >= 1);
    await store.close();
  },
);
