/**
 * "Does any worker serve this model?" — answered from the store's fleet view, kept per router instance for a few
 * seconds so a burst of requests costs one store command, not one each. A request for a model that no connected
 * worker serves fails at once with a 503 naming it, but only when the router can know: at least one GPU/CLI worker
 * is connected and every connected one has said what it serves. With no worker at all the request waits in the
 * queue as before (a worker may be starting); it then fails after AUXOT_QUEUE_TIMEOUT, also naming the model.
 */
import type { RouterContext } from "../dispatch/context.ts";
import { ApiError } from "../http/errors.ts";
import type { JobEvent } from "../protocol/events.ts";
import type { PolicyModel } from "../protocol/worker-protocol.ts";
import type { FleetStatus } from "../store/store.ts";
import { fleetView } from "./fleet-view.ts";
import { modelsOfWorker } from "./route.ts";

/**
 * "Served" is trusted this long; any other answer is re-checked unless it is fresher than NEGATIVE_MS. On Upstash a
 * fresh view is a billed command, and sparse traffic (a coding agent's turns, seconds to tens of seconds apart) paid
 * one on most requests with 5 s. A "served" that went stale costs little: the request queues, and is served if the
 * worker comes back or fails after AUXOT_QUEUE_TIMEOUT naming the model, as with no worker at all.
 */
const FLEET_CACHE_MS = 30_000;
const NEGATIVE_MS = 1_000;

/**
 * Throws a 503 naming the model when the fleet shows no worker serves it. The view is the instance's last one
 * (fleet-view.ts, shared with the tool catalog); each request that needs a fresher one reads it itself (under
 * workerd a request must not wait on another request's I/O).
 */
export async function assertModelServed(ctx: RouterContext, model: PolicyModel): Promise<void> {
  let entry = await fleetView(ctx, FLEET_CACHE_MS);
  let verdict = judge(ctx, entry.fleet, model);
  if (verdict !== "served" && ctx.now() - entry.at > NEGATIVE_MS) {
    entry = await fleetView(ctx, NEGATIVE_MS);
    verdict = judge(ctx, entry.fleet, model);
  }
  if (verdict === "unserved") throw modelNotServed(model.name, servedList(ctx, entry.fleet));
}

function judge(ctx: RouterContext, fleet: FleetStatus, model: PolicyModel): "served" | "unserved" | "unknown" {
  const serving = fleet.workers.filter((w) => w.info.kind !== "tools");
  if (serving.length === 0) return "unknown";
  let allKnown = true;
  for (const w of serving) {
    if (!w.info.models && !w.info.loaded) {
      allKnown = false; // still starting: it has not said what it will serve
      continue;
    }
    if (modelsOfWorker(ctx.config.policy, w.info).includes(model.name)) return "served";
  }
  return allKnown ? "unserved" : "unknown";
}

function servedList(ctx: RouterContext, fleet: FleetStatus): string[] {
  const names = new Set<string>();
  for (const w of fleet.workers) {
    if (w.info.kind !== "tools") modelsOfWorker(ctx.config.policy, w.info).forEach((n) => names.add(n));
  }
  return [...names];
}

export function modelNotServed(model: string, served: string[] | undefined): ApiError {
  const others = served && served.length > 0 ? ` Connected workers serve: ${served.join(", ")}.` : "";
  return new ApiError(
    "overloaded",
    `No connected worker serves the model "${model}".${others} Start a worker that serves it (\`--models ${model}\`).`,
    { status: 503, code: "model_not_served", retryAfterSeconds: 10 },
  );
}

/** The store's queue-timeout event, reworded to name the model no worker took the job for. */
export function nameModelInQueueTimeout(events: JobEvent[], model: string): JobEvent[] {
  return events.map((event) =>
    event.type === "error" && event.code === "queue_timeout"
      ? {
        ...event,
        message: `no worker serving the model "${model}" took the job in time (is one connected with a free slot?)`,
      }
      : event
  );
}

/**
 * Makes an event source name its model in a queue-timeout error. Patched onto the instance so the dispatch code
 * keeps its own types (the tool loop holds the job runs it starts).
 */
export function withModelNamed<T extends { next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]> }>(
  source: T,
  model: string,
): T {
  const next = source.next.bind(source);
  source.next = async (signal, allowEmpty) => nameModelInQueueTimeout(await next(signal, allowEmpty), model);
  return source;
}
