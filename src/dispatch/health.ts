/**
 * `GET /health` (no authentication): whether the router can serve, and if not, why — the fleet as the store sees
 * it (all instances), free slots, queue depth. No secrets, no prompt contents.
 */
import type { RouterContext } from "./context.ts";

export async function fleetHealth(ctx: RouterContext) {
  const policy = ctx.config.policy;
  try {
    const fleet = await ctx.store.fleet();
    const serving = fleet.workers.filter((w) => w.info.kind !== "tools");
    const ready = serving.filter((w) => w.info.kind === "tools" || w.info.loaded?.policyVersion === policy.version);
    const slots = ready.reduce((n, w) => n + w.info.slots, 0);
    // The store knows which jobs each worker holds now; the worker's own `free` is as old as its last poll.
    const free = ready.reduce((n, w) => n + Math.max(0, w.info.slots - w.activeJobs), 0);
    const queued = Object.values(fleet.queued).reduce((a, b) => a + b, 0);
    let reason: string | undefined;
    if (serving.length === 0) {
      reason = "no worker connected: requests wait in the queue until one connects (AUXOT_QUEUE_TIMEOUT)";
    } else if (ready.length === 0) reason = "workers are connected but still loading the model policy";
    else if (free === 0 && queued > 0) reason = "all slots are busy: requests are queued";
    return {
      status: reason && ready.length === 0 ? "degraded" : "ok",
      ...(reason ? { reason } : {}),
      store: ctx.store.kind,
      policy: {
        engine: policy.engine,
        model: policy.model.name,
        quantization: policy.model.quantization ?? "auto",
        version: policy.version,
      },
      workers: {
        total: fleet.workers.length,
        ready: ready.length,
        byKind: countBy(fleet.workers.map((w) => w.info.kind)),
      },
      slots: { total: slots, free },
      queue: { depth: queued, byLane: fleet.queued },
      running: fleet.running,
    };
  } catch (err) {
    ctx.log.error("health check failed", { error: err });
    return { status: "error", reason: "the store is unreachable", store: ctx.store.kind };
  }
}

function countBy(items: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[item] = (out[item] ?? 0) + 1;
  return out;
}
