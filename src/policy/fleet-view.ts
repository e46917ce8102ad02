/**
 * The store's fleet view as this router instance last read it, shared by everything that asks "which workers are
 * there" on a request's way in (the model check in availability.ts, the server-tool catalog in src/tools): on Upstash
 * each read is a billed command, and a chat request arriving after a quiet moment otherwise read it twice, ms apart.
 * Only a finished read is kept: a request never awaits another request's read in flight (under workerd it must not
 * wait on another request's I/O), it reads for itself.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { FleetStatus } from "../store/store.ts";

export interface FleetView {
  /** When it was read (ctx.now()). */
  at: number;
  fleet: FleetStatus;
}

const last = new WeakMap<object, FleetView>();

/** The last view read by this instance if it is at most `maxAgeMs` old, or a fresh read. A failed read is not kept. */
export async function fleetView(ctx: RouterContext, maxAgeMs: number): Promise<FleetView> {
  const hit = last.get(ctx);
  if (hit && ctx.now() - hit.at <= maxAgeMs) return hit;
  const view = { at: ctx.now(), fleet: await ctx.store.fleet() };
  const newest = last.get(ctx);
  if (!newest || newest.at <= view.at) last.set(ctx, view);
  return view;
}
