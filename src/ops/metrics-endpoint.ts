/**
 * The body of `GET /metrics`: counters (fleet-wide sums when the store is shared), this instance's histograms, and
 * gauges computed at scrape time from the store's fleet view. Costs one `fleet()` plus, when shared, at most one
 * flush and one counter read.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { Gauge } from "../metrics.ts";
import type { FleetStatus } from "../store/store.ts";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export async function metricsText(ctx: RouterContext): Promise<string> {
  const [fleet, totals] = await Promise.all([ctx.store.fleet(), ctx.metrics.counterTotals()]);
  return ctx.metrics.renderWith(totals, fleetGauges(fleet, ctx.config.policy.version));
}

export function fleetGauges(fleet: FleetStatus, policyVersion: string): Gauge[] {
  const byKind = new Map<string, { workers: number; ready: number; slots: number; free: number; tps: number }>();
  for (const w of fleet.workers) {
    const k = byKind.get(w.info.kind) ?? { workers: 0, ready: 0, slots: 0, free: 0, tps: 0 };
    k.workers++;
    if (w.info.kind === "tools" || w.info.loaded?.policyVersion === policyVersion) k.ready++;
    k.slots += w.info.slots;
    k.free += w.info.free;
    k.tps += w.info.tokensPerSecond ?? 0;
    byKind.set(w.info.kind, k);
  }
  const kinds = [...byKind.entries()];
  const perKind = (name: string, help: string, pick: (k: typeof kinds[number][1]) => number): Gauge => ({
    name,
    help,
    values: kinds.map(([kind, k]) => ({ labels: { kind }, value: pick(k) })),
  });
  return [
    perKind("auxot_workers", "Workers seen recently, by kind", (k) => k.workers),
    perKind("auxot_workers_ready", "Workers that loaded the current model policy, by kind", (k) => k.ready),
    perKind("auxot_slots", "Worker slots, by kind", (k) => k.slots),
    perKind("auxot_slots_free", "Free worker slots, by kind", (k) => k.free),
    perKind(
      "auxot_worker_tokens_per_second",
      "Generation speed the workers report (sum over workers), by kind",
      (k) => k.tps,
    ),
    {
      name: "auxot_queue_depth",
      help: "Jobs waiting, by lane (chat, tool:<name>)",
      values: Object.entries(fleet.queued).map(([lane, value]) => ({ labels: { lane }, value })),
    },
    { name: "auxot_jobs_running", help: "Jobs running", values: [{ value: fleet.running }] },
  ];
}
