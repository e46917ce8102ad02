/**
 * The embedded store: all state in this process, for a single router instance (`AUXOT_REDIS_URL` empty).
 * It is the reference implementation of the JobStore semantics (src/store/store.ts); the Upstash store must
 * behave the same, and tests/store/conformance.ts holds both to it. Waiting is event-driven (no sleep loops).
 */
import { isOutput, isTerminal, type JobEvent } from "../protocol/events.ts";
import type { WorkerInfo, WorkerJob } from "../protocol/worker-protocol.ts";
import {
  type AppendResult,
  type CancelReason,
  type ClaimRequest,
  type ClaimResult,
  DEFAULT_STORE_OPTIONS,
  type FleetStatus,
  type JobState,
  type JobStore,
  type NewJob,
  type ReadResult,
  type ReapResult,
  StoreError,
  type StoreOptions,
} from "./store.ts";
import { cancelEvent, jobTopic, LANE_TOPIC_PREFIX, requeueable, workerLostEvent } from "./shared.ts";
import { VerifiedKeys } from "./verified-keys.ts";
import { Wakeup } from "./wakeup.ts";

interface JobEntry {
  job: Omit<NewJob, "payload">;
  /**
   * What the worker receives, until the job finishes: a finished job is kept a few seconds for its caller's last
   * reads, and its request (the whole prompt) would otherwise be held that long too — at hundreds of jobs a second,
   * most of the router's heap.
   */
  payload?: NewJob["payload"];
  state: JobState;
  attempt: number;
  enqueuedAt: number;
  workerId?: string;
  leaseExpiresAt: number;
  /** All events the caller will read, in order (worker events and the router's own error events). */
  events: JobEvent[];
  eventCount: number;
  /** Worker events accepted in the current attempt (the `seq` a worker's next batch must start at). */
  attemptEvents: number;
  hasOutput: boolean;
  callerSeenAt: number;
  finishedAt: number;
}

/**
 * What is left of a finished job once a reader has read it to its end: its events and final state, readable again
 * for READ_OUT_GRACE_MS (not finishedTtlMs: its caller has all of it). The job's record goes at once; a late post or
 * poll from its worker is told "unknown job" (stop), as "not leased" told it before. Finished jobs kept a minute were
 * most of the router's heap at peak.
 */
interface ReadOutJob {
  state: JobState;
  events: JobEvent[];
  at: number;
}

interface WorkerEntry {
  info: WorkerInfo;
  lastSeenAt: number;
  /**
   * The conversations whose KV cache this worker holds (prompt-cache affinity): those it advertised in its last poll
   * (`cachedConversations`), those of its jobs still leased to it, and those of the jobs it claimed since.
   */
  conversations: Set<string>;
}

/** How long a finished job read to its end can be read again at its last cursor. */
const READ_OUT_GRACE_MS = 1_000;

export class EmbeddedStore implements JobStore {
  readonly kind = "embedded" as const;
  #ops = 0;
  readonly #opts: StoreOptions;
  readonly #jobs = new Map<string, JobEntry>();
  readonly #readOut = new Map<string, ReadOutJob>();
  readonly #lanes = new Map<string, string[]>();
  readonly #workers = new Map<string, WorkerEntry>();
  readonly #verified = new VerifiedKeys();
  readonly #wakeup = new Wakeup();
  readonly #counters = new Map<string, number>();

  constructor(options: Partial<StoreOptions> = {}) {
    this.#opts = { ...DEFAULT_STORE_OPTIONS, ...options };
  }

  get commandCount(): number {
    return this.#ops;
  }

  enqueue(job: NewJob): Promise<void> {
    this.#ops++;
    const lane = this.#lane(job.lane);
    if (lane.length >= this.#opts.maxQueued) {
      return Promise.reject(new StoreError("queue_full", `queue "${job.lane}" is full (${lane.length} jobs)`));
    }
    const now = this.#opts.now();
    const { payload, ...rest } = job;
    this.#jobs.set(job.id, {
      job: rest,
      payload,
      state: "queued",
      attempt: 1,
      enqueuedAt: now,
      leaseExpiresAt: 0,
      events: [],
      eventCount: 0,
      attemptEvents: 0,
      hasOutput: false,
      callerSeenAt: now,
      finishedAt: 0,
    });
    lane.push(job.id);
    this.#wakeup.notify(LANE_TOPIC_PREFIX + job.lane);
    return Promise.resolve();
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    // Waiting uses the real monotonic clock; the injectable `now` decides leases and deadlines only.
    const waitUntil = performance.now() + req.waitMs;
    const cancelled = this.#touchWorker(req);
    for (;;) {
      this.#ops++;
      const jobs = this.#take(req.worker, req.lanes, req.max);
      const left = waitUntil - performance.now();
      if (jobs.length > 0 || left <= 0 || req.signal?.aborted || req.max <= 0) return { jobs, cancelled };
      // Wake on any new job in a served lane; re-check affinity-held jobs after their window passes.
      const woken = await this.#wakeup.wait(
        req.lanes.map((lane) => LANE_TOPIC_PREFIX + lane),
        Math.min(left, this.#affinityRecheckMs(req.lanes)),
        req.signal,
      );
      if (!woken && req.signal?.aborted) return { jobs: [], cancelled };
    }
  }

  appendEvents(jobId: string, workerId: string, seq: number, events: JobEvent[]): Promise<AppendResult> {
    this.#ops++;
    const entry = this.#jobs.get(jobId);
    if (!entry) return Promise.resolve({ ok: false, reason: "unknown_job" });
    if (entry.workerId !== workerId || (entry.state !== "running" && entry.state !== "cancelled")) {
      return Promise.resolve({ ok: false, reason: "not_leased" });
    }
    if (entry.state === "cancelled") return Promise.resolve({ ok: true, cancelled: true, next: entry.attemptEvents });
    if (seq > entry.attemptEvents) return Promise.resolve({ ok: false, reason: "seq_gap", next: entry.attemptEvents });
    const fresh = events.slice(entry.attemptEvents - seq);
    const now = this.#opts.now();
    entry.leaseExpiresAt = now + this.#opts.leaseMs;
    for (const event of fresh) {
      entry.attemptEvents++;
      if (event.type === "error" && requeueable(event) && !entry.hasOutput) {
        // Nothing reached the caller yet: another worker can still serve it in full.
        this.#requeue(entry);
        break;
      }
      this.#push(entry, event);
      if (isOutput(event)) entry.hasOutput = true;
      if (isTerminal(event)) {
        this.#finish(entry, event.type === "done" ? "done" : "failed", now);
        break;
      }
    }
    this.#wakeup.notify(jobTopic(jobId));
    return Promise.resolve({ ok: true, cancelled: false, next: entry.attemptEvents });
  }

  async readEvents(jobId: string, cursor: string, waitMs: number, signal?: AbortSignal): Promise<ReadResult> {
    const from = cursor === "" ? 0 : Number(cursor);
    const deadline = performance.now() + waitMs;
    for (;;) {
      this.#ops++;
      const entry = this.#jobs.get(jobId);
      const readOut = entry ? undefined : this.#readOut.get(jobId);
      if (readOut) {
        return { events: readOut.events.slice(from), cursor: String(readOut.events.length), state: readOut.state };
      }
      if (!entry) {
        return {
          events: [{ type: "error", message: "job not found", retryable: false, code: "unknown_job" }],
          cursor,
          state: "failed",
        };
      }
      entry.callerSeenAt = this.#opts.now();
      const finished = entry.state !== "queued" && entry.state !== "running";
      if (entry.eventCount > from || finished) {
        if (finished) {
          this.#jobs.delete(jobId);
          this.#readOut.set(jobId, { state: entry.state, events: entry.events, at: this.#opts.now() });
        }
        return { events: entry.events.slice(from), cursor: String(entry.eventCount), state: entry.state };
      }
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) return { events: [], cursor: String(from), state: entry.state };
      await this.#wakeup.wait([jobTopic(jobId)], left, signal);
    }
  }

  cancel(jobId: string, reason: CancelReason): Promise<void> {
    this.#ops++;
    const entry = this.#jobs.get(jobId);
    if (!entry || (entry.state !== "queued" && entry.state !== "running")) return Promise.resolve();
    if (entry.state === "queued") this.#removeFromLane(entry);
    this.#push(entry, cancelEvent(reason));
    // A running job keeps its workerId until the worker hears of the cancel (on its next poll or post).
    this.#finish(entry, "cancelled", this.#opts.now(), { keepWorker: true });
    this.#wakeup.notify(jobTopic(jobId));
    return Promise.resolve();
  }

  reap(): Promise<ReapResult> {
    this.#ops++;
    const now = this.#opts.now();
    const result: ReapResult = { requeued: 0, failed: 0, cancelled: 0, timedOut: 0 };
    for (const [id, entry] of this.#jobs) {
      if (entry.state !== "queued" && entry.state !== "running") {
        if (entry.finishedAt + this.#opts.finishedTtlMs <= now) this.#jobs.delete(id);
        continue;
      }
      let reason: CancelReason | undefined;
      if (now >= entry.job.deadlineAt) reason = "timeout";
      else if (entry.state === "queued" && now >= entry.job.queueDeadlineAt) reason = "queue_timeout";
      else if (entry.callerSeenAt + this.#opts.callerTimeoutMs <= now) reason = "caller_left";
      if (reason) {
        void this.cancel(id, reason);
        if (reason === "caller_left") result.cancelled++;
        else result.timedOut++;
        continue;
      }
      if (entry.state === "running" && entry.leaseExpiresAt <= now) {
        if (entry.hasOutput) {
          this.#push(entry, workerLostEvent());
          this.#finish(entry, "failed", now);
          result.failed++;
        } else {
          this.#requeue(entry);
          result.requeued++;
        }
        this.#wakeup.notify(jobTopic(id));
      }
    }
    // Oldest first (insertion order): stop at the first one still in its grace.
    for (const [id, gone] of this.#readOut) {
      if (gone.at + READ_OUT_GRACE_MS > now) break;
      this.#readOut.delete(id);
    }
    for (const [id, worker] of this.#workers) {
      if (worker.lastSeenAt + this.#opts.workerTtlMs <= now) this.#workers.delete(id);
    }
    this.#verified.sweep(now);
    return Promise.resolve(result);
  }

  fleet(): Promise<FleetStatus> {
    this.#ops++;
    const now = this.#opts.now();
    const active = new Map<string, number>();
    let running = 0;
    for (const entry of this.#jobs.values()) {
      if (entry.state === "running" && entry.workerId) {
        running++;
        active.set(entry.workerId, (active.get(entry.workerId) ?? 0) + 1);
      }
    }
    const workers = [...this.#workers.values()]
      .filter((w) => w.lastSeenAt + this.#opts.workerTtlMs > now)
      .map((w) => ({ info: w.info, lastSeenAt: w.lastSeenAt, activeJobs: active.get(w.info.id) ?? 0 }));
    const queued: Record<string, number> = {};
    for (const [lane, ids] of this.#lanes) if (ids.length > 0) queued[lane] = ids.length;
    return Promise.resolve({ workers, queued, running });
  }

  getVerifiedKey(digest: string): Promise<string | null> {
    this.#ops++;
    return Promise.resolve(this.#verified.get(digest, this.#opts.now()));
  }

  putVerifiedKey(digest: string, role: string, ttlMs: number): Promise<void> {
    this.#ops++;
    this.#verified.put(digest, role, this.#opts.now() + ttlMs);
    return Promise.resolve();
  }

  addCounters(deltas: Record<string, number>): Promise<void> {
    this.#ops++;
    for (const [name, delta] of Object.entries(deltas)) {
      this.#counters.set(name, (this.#counters.get(name) ?? 0) + delta);
    }
    return Promise.resolve();
  }

  readCounters(): Promise<Record<string, number>> {
    this.#ops++;
    return Promise.resolve(Object.fromEntries(this.#counters));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  // --- internals -------------------------------------------------------------------------------------------

  /** Appends an event for the caller. */
  #push(entry: JobEntry, event: JobEvent): void {
    entry.events.push(event);
    entry.eventCount++;
  }

  #lane(name: string): string[] {
    let lane = this.#lanes.get(name);
    if (!lane) this.#lanes.set(name, lane = []);
    return lane;
  }

  /** Heartbeat: records the worker, extends its leases, reports which of its jobs it must stop. */
  #touchWorker(req: ClaimRequest): string[] {
    const now = this.#opts.now();
    // The conversations it holds: those it advertises, plus those of its jobs still leased to it (added below).
    // A claim records the claimed job's conversation at once (#take): the worker advertises a conversation only once
    // its slot is free again, on its first poll after the job ended, and by then the caller may have sent the next
    // request, which another worker's parked poll would take. A poll made while the job still runs (a heartbeat, a
    // claim for another slot) advertises a set without it; keeping the conversations of its leased jobs keeps the
    // claim-time record until the worker can advertise it (or, its cache gone, no longer does).
    const conversations = new Set(req.worker.cachedConversations ?? []);
    this.#workers.set(req.worker.id, { info: req.worker, lastSeenAt: now, conversations });
    const cancelled: string[] = [];
    for (const id of req.activeJobs) {
      const entry = this.#jobs.get(id);
      if (!entry || entry.workerId !== req.worker.id || entry.state !== "running") {
        cancelled.push(id);
        if (entry?.workerId === req.worker.id && entry.state === "cancelled") entry.workerId = undefined;
        continue;
      }
      entry.leaseExpiresAt = now + this.#opts.leaseMs;
      if (entry.job.conversationKey) conversations.add(entry.job.conversationKey);
    }
    return cancelled;
  }

  /** Takes up to `max` jobs for this worker: FIFO per lane, honouring prompt-cache affinity for a short while. */
  #take(worker: WorkerInfo, lanes: string[], max: number): WorkerJob[] {
    const now = this.#opts.now();
    const taken: WorkerJob[] = [];
    // Claim-time holder record: a job's conversation joins the worker's set as it takes the job (see #touchWorker).
    const mine = this.#workers.get(worker.id)?.conversations ?? new Set(worker.cachedConversations ?? []);
    for (const laneName of lanes) {
      const lane = this.#lanes.get(laneName);
      if (!lane) continue;
      // Jobs whose conversation this worker holds go first, then the rest in order.
      const order = [...lane].sort((a, b) => Number(this.#holds(mine, b)) - Number(this.#holds(mine, a)));
      for (const id of order) {
        if (taken.length >= max) return taken;
        const entry = this.#jobs.get(id)!;
        if (!mine.has(entry.job.conversationKey ?? "") && this.#heldElsewhere(entry, worker.id, now)) continue;
        lane.splice(lane.indexOf(id), 1);
        entry.state = "running";
        entry.workerId = worker.id;
        entry.leaseExpiresAt = now + this.#opts.leaseMs;
        entry.attemptEvents = 0;
        if (entry.job.conversationKey) mine.add(entry.job.conversationKey);
        taken.push(
          {
            ...entry.payload!,
            attempt: entry.attempt,
            deadlineMs: Math.max(0, entry.job.deadlineAt - now),
          } as WorkerJob,
        );
      }
    }
    return taken;
  }

  #holds(mine: Set<string>, jobId: string): boolean {
    const key = this.#jobs.get(jobId)?.job.conversationKey;
    return key !== undefined && mine.has(key);
  }

  /** True while another live worker with a free slot holds this job's conversation and the window is open. */
  #heldElsewhere(entry: JobEntry, workerId: string, now: number): boolean {
    const key = entry.job.conversationKey;
    if (!key || entry.enqueuedAt + this.#opts.affinityWaitMs <= now) return false;
    for (const w of this.#workers.values()) {
      if (w.info.id === workerId || w.lastSeenAt + this.#opts.workerTtlMs <= now) continue;
      if (w.info.free > 0 && w.conversations.has(key)) return true;
    }
    return false;
  }

  #affinityRecheckMs(lanes: string[]): number {
    for (const lane of lanes) {
      for (const id of this.#lanes.get(lane) ?? []) {
        if (this.#jobs.get(id)?.job.conversationKey) return this.#opts.affinityWaitMs;
      }
    }
    return Number.POSITIVE_INFINITY;
  }

  #requeue(entry: JobEntry): void {
    entry.state = "queued";
    entry.attempt++;
    entry.workerId = undefined;
    entry.attemptEvents = 0;
    entry.enqueuedAt = this.#opts.now();
    // Back at the head: it has waited its turn already.
    this.#lane(entry.job.lane).unshift(entry.job.id);
    this.#wakeup.notify(LANE_TOPIC_PREFIX + entry.job.lane);
  }

  #removeFromLane(entry: JobEntry): void {
    const lane = this.#lanes.get(entry.job.lane);
    const index = lane?.indexOf(entry.job.id) ?? -1;
    if (lane && index >= 0) lane.splice(index, 1);
  }

  #finish(entry: JobEntry, state: JobState, now: number, opts: { keepWorker?: boolean } = {}): void {
    entry.state = state;
    entry.finishedAt = now;
    entry.payload = undefined;
    entry.leaseExpiresAt = 0;
    if (!opts.keepWorker) entry.workerId = undefined;
  }
}
