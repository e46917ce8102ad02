/**
 * The job store: every piece of shared state (queue, leases, events, workers, verified-key cache) behind one
 * interface whose methods are queue steps. Two implementations: `EmbeddedStore` (in-process, one instance) and
 * `UpstashStore` (Upstash Redis over HTTP, any number of instances/isolates). Both pass tests/store/conformance.ts.
 *
 * Lifecycle of a job:  enqueue → queued → claim → running (leased to one worker) → done | failed | cancelled.
 * A lease lost before any output puts the job back at the head of its lane (attempt + 1); after output it fails.
 */
import type { JobEvent } from "../protocol/events.ts";
import type { WorkerInfo, WorkerJob } from "../protocol/worker-protocol.ts";

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

/** What the router enqueues. `lane` is "chat" or "tool:<name>"; a worker claims from the lanes it serves. */
export interface NewJob {
  id: string;
  lane: string;
  /** The job as the worker will receive it, without the per-claim fields (attempt, deadlineMs). */
  payload: DistributiveOmit<WorkerJob, "attempt" | "deadlineMs">;
  /** Absolute time (ms) after which the job fails with a timeout, wherever it is (queued or running). */
  deadlineAt: number;
  /** Absolute time (ms) after which a job still queued fails (no worker took it in time). */
  queueDeadlineAt: number;
  /**
   * Optional affinity: prefer a worker that holds this conversation — one that advertises it in
   * `cachedConversations`, or claimed a job of it (recorded at claim time, kept while that job is leased to it, and
   * replaced by what the worker advertises on its polls after that).
   */
  conversationKey?: string;
}

export interface ClaimRequest {
  worker: WorkerInfo;
  lanes: string[];
  /** Jobs the worker still runs: their leases are extended; cancelled ones are reported back. */
  activeJobs: string[];
  max: number;
  /** How long to wait for a job when none is ready (0 = answer at once). */
  waitMs: number;
  signal?: AbortSignal;
}

export interface ClaimResult {
  jobs: WorkerJob[];
  /** Of `activeJobs`: those cancelled or no longer leased to this worker. */
  cancelled: string[];
}

export type AppendResult =
  | { ok: true; cancelled: boolean; next: number }
  | { ok: false; reason: "unknown_job" | "not_leased" | "seq_gap"; next?: number };

export interface ReadResult {
  events: JobEvent[];
  /** Opaque position to pass to the next read. */
  cursor: string;
  state: JobState;
}

export interface WorkerStatus {
  info: WorkerInfo;
  lastSeenAt: number;
  activeJobs: number;
}

export interface FleetStatus {
  workers: WorkerStatus[];
  /** Jobs waiting, per lane. */
  queued: Record<string, number>;
  running: number;
}

export interface ReapResult {
  requeued: number;
  failed: number;
  cancelled: number;
  timedOut: number;
}

export type CancelReason = "caller_left" | "timeout" | "queue_timeout" | "shutdown";

export interface JobStore {
  readonly kind: "embedded" | "upstash";
  /** Redis commands (or, embedded, store operations) issued so far: read by tests, /metrics and benchmarks. */
  readonly commandCount: number;

  /**
   * Adds a job at the tail of its lane. Throws StoreError("queue_full") past the store's queue bound. `reader` is
   * the object that will read the job's events (readEvents' `reader`) and `signal` its request's: a store may get
   * ready for those reads before the job exists (the Upstash store on Workers subscribes to the job's channel first).
   */
  enqueue(job: NewJob, reader?: object, signal?: AbortSignal): Promise<void>;
  /** Long-poll step of a worker: heartbeat, extend its leases, report cancellations, hand out up to `max` jobs. */
  claim(req: ClaimRequest): Promise<ClaimResult>;
  /** Appends a batch of events of a job leased to `workerId`, idempotently by `seq`; extends the lease. */
  appendEvents(jobId: string, workerId: string, seq: number, events: JobEvent[]): Promise<AppendResult>;
  /**
   * Reads events after `cursor` ("" = from the start), waiting up to `waitMs` for new ones; marks the caller alive.
   * `reader`, an object that lives as long as the request reading (and only that request passes it), lets a store
   * keep something open for that request's later reads (the Upstash store's subscription, on Workers).
   */
  readEvents(jobId: string, cursor: string, waitMs: number, signal?: AbortSignal, reader?: object): Promise<ReadResult>;
  /** Cancels a job: dequeued if queued; its worker learns it on its next exchange. Appends an error event. */
  cancel(jobId: string, reason: CancelReason): Promise<void>;
  /** Recovers from lost leases, dead callers and passed deadlines. Cheap when there is nothing to do. */
  reap(): Promise<ReapResult>;
  /** Workers seen recently, queue depth per lane, running jobs. */
  fleet(): Promise<FleetStatus>;

  /** Verified-key cache: a keyed digest of a key (never the key) → its role, for `ttlMs`. */
  getVerifiedKey(digest: string): Promise<string | null>;
  putVerifiedKey(digest: string, role: string, ttlMs: number): Promise<void>;

  /**
   * Fleet-wide counters (requests, outcomes, tokens...) for /metrics where no process lives long (Workers):
   * instances add their local deltas in one batched call every few seconds, and a scrape reads the sums.
   */
  addCounters(deltas: Record<string, number>): Promise<void>;
  readCounters(): Promise<Record<string, number>>;
  /**
   * Billed stores only (Upstash): store commands counted fleet-wide in the last `minutes` minutes (as flushed by
   * every instance with addCounters, so up to a flush interval behind). One command.
   */
  commandsInLast?(minutes: number): Promise<number>;

  close(): Promise<void>;
}

export type StoreErrorCode = "queue_full" | "unavailable";

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
    this.name = "StoreError";
  }
}

/** Options every store honours; defaults are the router's. */
export interface StoreOptions {
  /** A claimed job's lease: the worker must poll or post within this time. */
  leaseMs: number;
  /** A caller that has not read for this long is gone (its instance died): the job is cancelled. */
  callerTimeoutMs: number;
  /** A worker unseen for this long is dropped from the fleet view. */
  workerTtlMs: number;
  /**
   * How long a finished job's events stay readable. Its caller reads them once, to the end; a store may let go of a
   * job read to its end sooner (the embedded store does at once: its memory is the router's).
   */
  finishedTtlMs: number;
  /** Jobs queued per lane at most. */
  maxQueued: number;
  /**
   * Prompt-cache affinity: a queued job whose conversation's KV cache sits on another live worker with a free slot
   * is left for that worker this long before any worker may take it (falling back rather than making it wait).
   */
  affinityWaitMs: number;
  /** The clock, injectable for tests. */
  now: () => number;
}

export const DEFAULT_STORE_OPTIONS: StoreOptions = {
  leaseMs: 30_000,
  callerTimeoutMs: 60_000,
  workerTtlMs: 60_000,
  finishedTtlMs: 60_000,
  maxQueued: 10_000,
  affinityWaitMs: 1_000,
  now: () => Date.now(),
};

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
