/**
 * The Upstash store: the JobStore on Upstash Redis over its REST API, shared by any number of router instances
 * (Deno processes, Workers isolates). Semantics are the embedded store's (src/store/embedded.ts); the conformance
 * suite holds both to them. Every step that must be atomic is ONE Lua script (src/store/upstash/lua/*); keys come from
 * src/store/upstash/keys.ts.
 *
 * Pieces: claims.ts (worker polls), reads.ts (callers waiting for events), subscription.ts (a caller's subscription
 * to its job's channel, on Workers), counters.ts (fleet-wide metric sums and command counts), parts.ts (what they
 * share and how they wait), rest.ts (REST client, retries), lua/ (one script per step), keys.ts (key table),
 * replies.ts (decoders), config.ts (the store's configuration).
 *
 * Cost is counted in commands (each is billed; docs/deploy.md has the table):
 * - a batch of events is one script call and one stream entry, whatever its size;
 * - a caller reads batches posted through this instance from memory, others with one XREAD BLOCK per batch; on
 *   Workers it subscribes to its job's channel instead, one SUBSCRIBE per answer (reads.ts, subscription.ts);
 * - a parked worker poll uses BLPOP on its lanes' wake lists; an idle worker claims only for its heartbeat;
 * - sweeps run at most every SWEEP_INTERVAL_MS per instance and not at all while the fleet is idle;
 * - blocking commands are bounded (maxBlockMs, 60 s) with an HTTP timeout longer than that, and if the service
 *   rejects them the store falls back to polling with backoff;
 * - every script is safe to repeat, and is retried through outages of a few seconds (rest.ts).
 */
import type { JobEvent } from "../../protocol/events.ts";
import { Claims } from "./claims.ts";
import { Counters } from "./counters.ts";
import { readFleet } from "./fleet.ts";
import { appendEventsScript } from "./lua/append-events.ts";
import { cancelScript } from "./lua/cancel.ts";
import { enqueueScript } from "./lua/enqueue.ts";
import { reapScript } from "./lua/reap.ts";
import { ScriptStatus } from "./lua/runner.ts";
import { PARK_MS, UpstashParts, WAKE_CAP, WAKE_TTL_MS } from "./parts.ts";
import { Reads } from "./reads.ts";
import { cancelEvent, jobTopic, LANE_TOPIC_PREFIX, workerLostEvent } from "../shared.ts";
import {
  type AppendResult,
  type CancelReason,
  type ClaimRequest,
  type ClaimResult,
  DEFAULT_STORE_OPTIONS,
  type FleetStatus,
  type JobStore,
  type NewJob,
  type ReadResult,
  type ReapResult,
  StoreError,
} from "../store.ts";
import { asArray, asNumber, asState, asString, eventFlag } from "./replies.ts";
import type { UpstashStoreConfig } from "./config.ts";

export type { UpstashStoreConfig } from "./config.ts";

/** One block covers a whole worker poll (AUXOT_POLL_WAIT, at most 60 s). */
const MAX_BLOCK_MS = 60_000;
/** Items per index per reap call, and reap calls per sweep at most. */
const REAP_BATCH = 200;
const REAP_MAX_ROUNDS = 50;
const REAP_LOCK_MS = 10_000;
/** Lazy sweeps (the router's): at most one per instance this often. */
const SWEEP_INTERVAL_MS = 30_000;
/**
 * Workers unseen this long leave the fleet view. Longer than the embedded store's: an idle worker's poll claims (and
 * so heartbeats) only every other 50 s poll (claims.ts), which is what keeps an idle worker under 2 commands a minute.
 */
const UPSTASH_WORKER_TTL_MS = 150_000;

export class UpstashStore implements JobStore {
  readonly kind = "upstash" as const;
  readonly #parts: UpstashParts;
  readonly #claims: Claims;
  readonly #reads: Reads;
  readonly #counters: Counters;
  readonly #lazySweeps: boolean;
  /** Lazy sweeps: when this instance last swept, and whether that sweep left nothing live that it has not seen. */
  #sweptAt = Number.NEGATIVE_INFINITY;
  #fleetIdle = false;

  constructor(config: UpstashStoreConfig) {
    this.#parts = new UpstashParts({
      url: config.url,
      token: config.token,
      prefix: config.prefix,
      options: { ...DEFAULT_STORE_OPTIONS, workerTtlMs: UPSTASH_WORKER_TTL_MS, ...config.options },
      fetch: config.fetch,
      maxBlockMs: config.maxBlockMs ?? MAX_BLOCK_MS,
      wakeups: config.wakeups ?? "direct",
      retryBudgetMs: config.retryBudgetMs,
      subscribe: config.subscribe ?? false,
    });
    this.#claims = new Claims(this.#parts);
    this.#reads = new Reads(this.#parts);
    this.#counters = new Counters(this.#parts);
    this.#lazySweeps = config.lazySweeps ?? false;
  }

  get #rest() {
    return this.#parts.rest;
  }
  get #scripts() {
    return this.#parts.scripts;
  }
  get #keys() {
    return this.#parts.keys;
  }
  get #prefixes() {
    return this.#parts.prefixes;
  }
  get #opts() {
    return this.#parts.opts;
  }
  get #wakeup() {
    return this.#parts.wakeup;
  }
  get #recent() {
    return this.#parts.recent;
  }

  get commandCount(): number {
    return this.#parts.rest.commandCount;
  }

  /** Store steps sent again after a transient failure. */
  get retryCount(): number {
    return this.#parts.rest.retryCount;
  }

  async enqueue(job: NewJob, reader?: object, signal?: AbortSignal): Promise<void> {
    // On Workers a streamed answer's caller subscribes first, so that no batch of the job is published before it
    // listens (Reads.watch).
    if (reader) await this.#reads.watch(job, reader, signal);
    try {
      await this.#enqueueScript(job);
    } catch (err) {
      if (reader) this.#reads.unwatch(job.id, reader);
      throw err;
    }
    this.#fleetIdle = false;
    this.#reads.enqueued(job);
    this.#wakeup.notify(LANE_TOPIC_PREFIX + job.lane);
  }

  async #enqueueScript(job: NewJob): Promise<void> {
    const now = this.#opts.now();
    const k = this.#keys;
    const reply = asArray(
      await this.#scripts.run(enqueueScript, {
        job: k.job(job.id),
        lane: k.lane(job.lane),
        lanes: k.lanes,
        deadlines: k.deadlines,
        queueDeadlines: k.queueDeadlines,
        callers: k.callers,
        affinity: k.affinity(job.lane),
        parked: k.parked(job.lane),
        running: k.running,
        workers: k.workers,
        conversationHolders: k.conversationHolders,
      }, {
        id: job.id,
        laneName: job.lane,
        payload: JSON.stringify(job.payload),
        deadlineAt: job.deadlineAt,
        queueDeadlineAt: job.queueDeadlineAt,
        conversationKey: job.conversationKey ?? "",
        now,
        maxQueued: this.#opts.maxQueued,
        safetyTtlMs: Math.max(0, job.deadlineAt - now) + this.#opts.finishedTtlMs + 60_000,
        wakePrefix: this.#prefixes.wakePrefix,
        wakeCap: WAKE_CAP,
        wakeTtlMs: WAKE_TTL_MS,
        token: crypto.randomUUID(),
        leaseMs: this.#opts.leaseMs,
        workerTtlMs: this.#opts.workerTtlMs,
        workerPrefix: this.#prefixes.workerPrefix,
        workerConversationsPrefix: this.#prefixes.workerConversationsPrefix,
        parkedPrefix: this.#prefixes.parkedPrefix,
        handoffPrefix: this.#prefixes.handoffPrefix,
      }),
      "enqueue",
    );
    const status = asString(reply[0], "enqueue");
    if (status === ScriptStatus.queueFull) {
      throw new StoreError("queue_full", `queue "${job.lane}" is full (${asNumber(reply[1], "enqueue")} jobs)`);
    }
    if (status === ScriptStatus.duplicate) throw new Error(`job ${job.id} was already enqueued`);
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    this.#fleetIdle = this.#fleetIdle && req.activeJobs.length === 0;
    const result = await this.#claims.claim(req);
    if (result.jobs.length > 0) this.#fleetIdle = false;
    return result;
  }

  async appendEvents(jobId: string, workerId: string, seq: number, events: JobEvent[]): Promise<AppendResult> {
    this.#fleetIdle = false;
    const k = this.#keys;
    const reply = asArray(
      await this.#scripts.run(appendEventsScript, {
        job: k.job(jobId),
        events: k.events(jobId),
        running: k.running,
        deadlines: k.deadlines,
        queueDeadlines: k.queueDeadlines,
        callers: k.callers,
        finished: k.finished,
        lanes: k.lanes,
      }, {
        id: jobId,
        workerId,
        seq,
        now: this.#opts.now(),
        leaseMs: this.#opts.leaseMs,
        finishedTtlMs: this.#opts.finishedTtlMs,
        flags: events.map(eventFlag).join(""),
        lanePrefix: this.#prefixes.lanePrefix,
        affinityPrefix: this.#prefixes.affinityPrefix,
        wakePrefix: this.#prefixes.wakePrefix,
        wakeCap: WAKE_CAP,
        wakeTtlMs: WAKE_TTL_MS,
        handoffPrefix: this.#prefixes.handoffPrefix,
        parkedPrefix: this.#prefixes.parkedPrefix,
        parkMs: PARK_MS,
        workerPrefix: this.#prefixes.workerPrefix,
      }, events.map((event) => JSON.stringify(event))),
      "append_events",
    );
    const status = asString(reply[0], "append_events");
    if (status === ScriptStatus.unknownJob || status === ScriptStatus.notLeased) return { ok: false, reason: status };
    if (status === ScriptStatus.seqGap) return { ok: false, reason: "seq_gap", next: asNumber(reply[1], "append") };
    const [, cancelled, next, from, count, prevId, entryId, entryState, requeuedLane] = reply;
    const id = asString(entryId, "append_events");
    if (id !== "") {
      const start = asNumber(from, "append_events");
      this.#recent.add(jobId, {
        prevId: asString(prevId, "append_events"),
        id,
        events: events.slice(start, start + asNumber(count, "append_events")),
        state: asState(entryState),
      });
      this.#wakeup.notify(jobTopic(jobId));
    }
    const lane = asString(requeuedLane, "append_events");
    if (lane !== "") this.#wakeup.notify(LANE_TOPIC_PREFIX + lane);
    return { ok: true, cancelled: asNumber(cancelled, "append_events") === 1, next: asNumber(next, "append_events") };
  }

  readEvents(
    jobId: string,
    cursor: string,
    waitMs: number,
    signal?: AbortSignal,
    reader?: object,
  ): Promise<ReadResult> {
    return this.#reads.readEvents(jobId, cursor, waitMs, signal, reader);
  }

  async cancel(jobId: string, reason: CancelReason): Promise<void> {
    const k = this.#keys;
    const event = cancelEvent(reason);
    const reply = asArray(
      await this.#scripts.run(cancelScript, {
        job: k.job(jobId),
        events: k.events(jobId),
        running: k.running,
        deadlines: k.deadlines,
        queueDeadlines: k.queueDeadlines,
        callers: k.callers,
        finished: k.finished,
        lanes: k.lanes,
      }, {
        id: jobId,
        event: JSON.stringify(event),
        now: this.#opts.now(),
        finishedTtlMs: this.#opts.finishedTtlMs,
        lanePrefix: this.#prefixes.lanePrefix,
        affinityPrefix: this.#prefixes.affinityPrefix,
        wakePrefix: this.#prefixes.wakePrefix,
        handoffPrefix: this.#prefixes.handoffPrefix,
      }),
      "cancel",
    );
    if (asString(reply[0], "cancel") !== ScriptStatus.ok) return;
    this.#recent.add(jobId, {
      prevId: asString(reply[1], "cancel"),
      id: asString(reply[2], "cancel"),
      events: [event],
      state: "cancelled",
    });
    this.#wakeup.notify(jobTopic(jobId));
  }

  async reap(): Promise<ReapResult> {
    const total: ReapResult = { requeued: 0, failed: 0, cancelled: 0, timedOut: 0 };
    if (this.#lazySweeps) {
      // Cheap at the edge: the router calls this on traffic; a sweep is worth a command only now and then, and
      // not at all while nothing is queued or running (any job seen through this instance ends that).
      const now = this.#opts.now();
      if (this.#fleetIdle || now - this.#sweptAt < SWEEP_INTERVAL_MS) return total;
      this.#sweptAt = now;
    }
    const token = crypto.randomUUID();
    const k = this.#keys;
    const p = this.#prefixes;
    for (let round = 0; round < REAP_MAX_ROUNDS; round++) {
      const reply = asArray(
        await this.#scripts.run(reapScript, {
          lock: k.reapLock,
          running: k.running,
          deadlines: k.deadlines,
          queueDeadlines: k.queueDeadlines,
          callers: k.callers,
          finished: k.finished,
          lanes: k.lanes,
          workers: k.workers,
          conversationHolders: k.conversationHolders,
        }, {
          token,
          lockMs: REAP_LOCK_MS,
          now: this.#opts.now(),
          callerTimeoutMs: this.#opts.callerTimeoutMs,
          workerTtlMs: this.#opts.workerTtlMs,
          finishedTtlMs: this.#opts.finishedTtlMs,
          batch: REAP_BATCH,
          jobPrefix: p.jobPrefix,
          eventsPrefix: p.eventsPrefix,
          lanePrefix: p.lanePrefix,
          affinityPrefix: p.affinityPrefix,
          wakePrefix: p.wakePrefix,
          wakeCap: WAKE_CAP,
          wakeTtlMs: WAKE_TTL_MS,
          workerPrefix: p.workerPrefix,
          workerConversationsPrefix: p.workerConversationsPrefix,
          timeoutEvent: JSON.stringify(cancelEvent("timeout")),
          queueTimeoutEvent: JSON.stringify(cancelEvent("queue_timeout")),
          callerLeftEvent: JSON.stringify(cancelEvent("caller_left")),
          workerLostEvent: JSON.stringify(workerLostEvent()),
          handoffPrefix: p.handoffPrefix,
        }),
        "reap",
      );
      if (asString(reply[0], "reap") === ScriptStatus.locked) break; // another instance is sweeping
      const [, requeued, failed, cancelled, timedOut, more, touched, live] = reply;
      this.#fleetIdle = asNumber(more, "reap") === 0 && asNumber(live, "reap") === 0;
      total.requeued += asNumber(requeued, "reap");
      total.failed += asNumber(failed, "reap");
      total.cancelled += asNumber(cancelled, "reap");
      total.timedOut += asNumber(timedOut, "reap");
      const list = asArray(touched, "reap");
      for (let i = 0; i + 2 < list.length; i += 3) {
        this.#wakeup.notify(jobTopic(asString(list[i + 1], "reap")));
        if (list[i] === "requeued") this.#wakeup.notify(LANE_TOPIC_PREFIX + asString(list[i + 2], "reap"));
      }
      if (asNumber(more, "reap") === 0) break;
    }
    return total;
  }

  fleet(): Promise<FleetStatus> {
    return readFleet(this.#parts);
  }

  async getVerifiedKey(digest: string): Promise<string | null> {
    const value = await this.#rest.command(["GET", this.#keys.verifiedKey(digest)]);
    if (typeof value !== "string") return null;
    const bar = value.indexOf("|");
    const expiresAt = Number(value.slice(0, bar));
    return bar > 0 && expiresAt > this.#opts.now() ? value.slice(bar + 1) : null;
  }

  async putVerifiedKey(digest: string, role: string, ttlMs: number): Promise<void> {
    const expiresAt = this.#opts.now() + ttlMs;
    await this.#rest.command([
      "SET",
      this.#keys.verifiedKey(digest),
      `${expiresAt}|${role}`,
      "PX",
      Math.max(1, Math.ceil(ttlMs)),
    ]);
  }

  addCounters(deltas: Record<string, number>): Promise<void> {
    return this.#counters.add(deltas);
  }

  commandsInLast(minutes: number): Promise<number> {
    return this.#counters.commandsInLast(minutes);
  }

  readCounters(): Promise<Record<string, number>> {
    return this.#counters.read();
  }

  close(): Promise<void> {
    this.#parts.closing.abort();
    this.#reads.close();
    return Promise.resolve();
  }
}
