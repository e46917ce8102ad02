/**
 * What one authenticated worker may make the router hold. Every worker of a role shares one key, and a key is all
 * it takes to post, so these bounds are what stands between one misbehaving (or stolen-key) worker and the router's
 * memory or the store's size. Each is refused with a 4xx the worker protocol documents (docs/worker-protocol.md).
 */
import type { KeyRole } from "../auth/keys.ts";
import type { WorkerInfo } from "../protocol/worker-protocol.ts";
import type { RouterContext } from "./context.ts";

export const WORKER_BOUNDS = {
  /** Events one job may have in all (`seq` + batch): far above a 128k-token answer in ~20 ms batches. */
  maxEventsPerJob: 100_000,
  /** Bytes of events (as JSON) one job may post in all, as counted by this router instance. */
  maxBytesPerJob: 32 * 1024 * 1024,
  /** Bytes of one events post (the body): a batch is a fraction of a second of output. */
  maxEventsPostBytes: 4 * 1024 * 1024,
  /** Worker ids seen in the last minute per key, by this router instance. */
  maxWorkerIdsPerKey: { admin: 1_000, tools: 100, api: 0 } as Record<KeyRole, number>,
  /** Tool definitions a tools worker advertises: copied into every chat job that offers server-side tools. */
  maxToolSchemaBytes: 256 * 1024,
} as const;

const WORKER_ID_WINDOW_MS = 60_000;
const JOB_BYTES_TABLE_MAX = 10_000;

interface InstanceState {
  workerIds: Map<KeyRole, Map<string, number>>;
  jobBytes: Map<string, number>;
}

// Per router instance (isolate): kept beside the context rather than in it, as it is this module's business only.
const states = new WeakMap<RouterContext, InstanceState>();
function state(ctx: RouterContext): InstanceState {
  let s = states.get(ctx);
  if (!s) states.set(ctx, s = { workerIds: new Map(), jobBytes: new Map() });
  return s;
}

/** Records a poll from worker `id`; false when the key already has its share of live worker ids. */
export function admitWorkerId(ctx: RouterContext, role: KeyRole, id: string): boolean {
  const now = ctx.now();
  const ids = state(ctx).workerIds.get(role) ?? new Map<string, number>();
  state(ctx).workerIds.set(role, ids);
  if (!ids.has(id) && ids.size >= WORKER_BOUNDS.maxWorkerIdsPerKey[role]) {
    for (const [other, seen] of ids) if (now - seen > WORKER_ID_WINDOW_MS) ids.delete(other);
    if (ids.size >= WORKER_BOUNDS.maxWorkerIdsPerKey[role]) return false;
  }
  ids.set(id, now);
  return true;
}

export function toolSchemaBytes(worker: WorkerInfo): number {
  return worker.tools ? JSON.stringify(worker.tools).length : 0;
}

/** Adds a batch's size to its job's count; false (and nothing added) when that would pass the bound. */
export function admitJobBytes(ctx: RouterContext, jobId: string, bytes: number): boolean {
  const table = state(ctx).jobBytes;
  const total = (table.get(jobId) ?? 0) + bytes;
  if (total > WORKER_BOUNDS.maxBytesPerJob) return false;
  table.delete(jobId);
  if (table.size >= JOB_BYTES_TABLE_MAX) table.delete(table.keys().next().value!);
  table.set(jobId, total);
  return true;
}

/** The job has ended (its final batch was accepted): its count is no longer needed. */
export function forgetJobBytes(ctx: RouterContext, jobId: string): void {
  state(ctx).jobBytes.delete(jobId);
}
