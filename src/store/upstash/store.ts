/**
 * The Upstash store: the JobStore on Upstash Redis over its REST API, shared by any number of router instances
 * (Deno processes, Workers isolates). Semantics are the embedded store's (src/store/embedded.ts); the conformance
 * suite holds both to them. Every step that must be atomic is ONE Lua script (src/store/upstash/lua/*); keys come from
 * src/store/upstash/keys.ts.
 *
 * Cost is counted in commands (each is billed):
 * - a batch of events is one script call and one stream entry, whatever its size;
 * - a caller waiting for events uses XREAD BLOCK on the job's stream (one command per batch it receives), and only
 *   every callerTimeoutMs/4 the read script that marks it alive;
 * - a parked worker poll uses BLPOP on its lanes' wake lists, so an idle worker costs a few commands a minute;
 * - blocking commands are bounded (maxBlockMs, 60 s) with an HTTP timeout longer than that, and if the service
 *   rejects them the store falls back to polling with backoff;
 * - waiters of this instance are also woken in-process: a batch posted through this instance reaches a reader
 *   here from memory (no command at all), a job enqueued here wakes a worker poll parked here at once.
 */
import type { JobEvent } from "../../protocol/events.ts";
import type { WorkerJob } from "../../protocol/worker-protocol.ts";
import { keyPrefixes, type StoreKeys, storeKeys } from "./keys.ts";
import { addCountersScript } from "./lua/add-counters.ts";
import { appendEventsScript } from "./lua/append-events.ts";
import { cancelScript } from "./lua/cancel.ts";
import { claimScript } from "./lua/claim.ts";
import { enqueueScript } from "./lua/enqueue.ts";
import { fleetScript } from "./lua/fleet.ts";
import { readEventsScript } from "./lua/read-events.ts";
import { reapScript } from "./lua/reap.ts";
import { ScriptRunner, ScriptStatus } from "./lua/runner.ts";
import { cancelEvent, jobTopic, LANE_TOPIC_PREFIX, workerLostEvent } from "../shared.ts";
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
  type WorkerStatus,
} from "../store.ts";
import { RecentBatches } from "./recent.ts";
import {
  asArray,
  asNumber,
  asState,
  asString,
  eventFlag,
  parseEntries,
  toRead,
  unknownJob,
} from "./replies.ts";
import { RedisReplyError, UpstashRest } from "./rest.ts";
import { Wakeup, type WakeupDelivery } from "../wakeup.ts";

export interface UpstashStoreConfig {
  /** The Upstash REST URL (see parseRedisUrl in config.ts). */
  url: string;
  token: string;
  /** Key prefix (default "auxot"); keys are `<prefix>:v1:...`. */
  prefix?: string;
  options?: Partial<StoreOptions>;
  fetch?: typeof fetch;
  /** Longest single blocking command in ms (default 60 s). */
  maxBlockMs?: number;
  /**
   * How same-instance wake-ups reach a waiter (src/store/wakeup.ts): "owned" where requests share an isolate but
   * must not settle each other's promises (Cloudflare Workers), "direct" in one process (Deno; the default).
   */
  wakeups?: WakeupDelivery;
}

type RaceOutcome<T> = { kind: "local" } | { kind: "remote"; value: T } | { kind: "timeout" } | { kind: "fallback" };

/** One block covers a whole worker poll (AUXOT_POLL_WAIT, at most 60 s): two commands per idle poll. */
const MAX_BLOCK_MS = 60_000;
/** Added to a blocking command's own timeout for its HTTP timeout. */
const BLOCK_HTTP_MARGIN_MS = 10_000;
/** Shorter waits are not worth a blocking command. */
const MIN_WAIT_MS = 50;
/** After a full blocking period, a remainder shorter than this is not worth another command. */
const REMAINDER_MIN_MS = 500;
/** Wake tokens kept per lane, and how long an unconsumed one lives. */
const WAKE_CAP = 8;
const WAKE_TTL_MS = 60_000;
/** Stream entries (batches) returned by one read. */
const READ_BATCH = 1_000;
/** Items per index per reap call, and reap calls per sweep at most. */
const REAP_BATCH = 200;
const REAP_MAX_ROUNDS = 50;
const REAP_LOCK_MS = 10_000;
/** A reader whose job's batches come through this instance first waits this long in memory before XREAD. */
const LOCAL_FIRST_MS = 1_000;
/** Polling fallback (when blocking commands fail): first and longest pause between checks. */
const POLL_MIN_MS = 250;
const POLL_MAX_MS = 4_000;
/** After a blocking command failed in transit, poll for this long before blocking again. */
const BLOCKING_RETRY_MS = 60_000;
/** Jobs whose reads are tracked here at most. */
const TRACKED_READS = 10_000;

const FINAL_STATES: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);

export class UpstashStore implements JobStore {
  readonly kind = "upstash" as const;
  readonly #rest: UpstashRest;
  readonly #scripts: ScriptRunner;
  readonly #keys: StoreKeys;
  readonly #prefixes: ReturnType<typeof keyPrefixes>;
  readonly #opts: StoreOptions;
  readonly #maxBlockMs: number;
  readonly #wakeup: Wakeup;
  readonly #closing = new AbortController();
  /** Batches stored through this instance: local readers take them from here. */
  readonly #recent = new RecentBatches();
  /** Per job read here: when its caller was last marked alive in Redis, and the state last seen. */
  readonly #reads = new Map<string, { markedAt: number; state: JobState }>();
  /**
   * Until when (performance.now()) waits poll instead of blocking: forever once the service rejected a blocking
   * command, for BLOCKING_RETRY_MS after one failed in transit (a proxy cutting long requests looks like that).
   */
  #pollUntil = 0;

  constructor(config: UpstashStoreConfig) {
    this.#rest = new UpstashRest({ url: config.url, token: config.token, fetch: config.fetch });
    this.#scripts = new ScriptRunner(this.#rest);
    this.#keys = storeKeys(config.prefix);
    this.#prefixes = keyPrefixes(this.#keys);
    this.#opts = { ...DEFAULT_STORE_OPTIONS, ...config.options };
    this.#maxBlockMs = config.maxBlockMs ?? MAX_BLOCK_MS;
    this.#wakeup = new Wakeup(config.wakeups ?? "direct");
  }

  get commandCount(): number {
    return this.#rest.commandCount;
  }

  async enqueue(job: NewJob): Promise<void> {
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
      }),
      "enqueue",
    );
    const status = asString(reply[0], "enqueue");
    if (status === ScriptStatus.queueFull) {
      throw new StoreError("queue_full", `queue "${job.lane}" is full (${asNumber(reply[1], "enqueue")} jobs)`);
    }
    if (status === ScriptStatus.duplicate) throw new Error(`job ${job.id} was already enqueued`);
    this.#wakeup.notify(LANE_TOPIC_PREFIX + job.lane);
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const deadline = performance.now() + req.waitMs;
    const signal = AbortSignal.any([this.#closing.signal, ...(req.signal ? [req.signal] : [])]);
    let result = await this.#claimOnce(req, req.activeJobs);
    const cancelled = result.cancelled;
    const poll = { backoffMs: POLL_MIN_MS };
    while (result.jobs.length === 0 && req.max > 0) {
      const left = deadline - performance.now();
      if (left < MIN_WAIT_MS || signal.aborted) break;
      // A job held back for another worker's cached conversation becomes free for anyone at `heldUntil`.
      const recheck = result.heldUntil > 0;
      const waitMs = recheck ? Math.min(left, Math.max(result.heldUntil - this.#opts.now(), MIN_WAIT_MS)) : left;
      const woken = await this.#waitForLanes(req.lanes, waitMs, signal, poll);
      if (signal.aborted || (!woken && !recheck)) break;
      result = await this.#claimOnce(req, []);
    }
    return { jobs: result.jobs, cancelled };
  }

  async appendEvents(jobId: string, workerId: string, seq: number, events: JobEvent[]): Promise<AppendResult> {
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

  async readEvents(jobId: string, cursor: string, waitMs: number, signal?: AbortSignal): Promise<ReadResult> {
    const deadline = performance.now() + waitMs;
    const now = this.#opts.now();
    const seen = this.#reads.get(jobId);
    const markDue = !seen || FINAL_STATES.has(seen.state) ||
      now - seen.markedAt >= this.#opts.callerTimeoutMs / 4;
    if (!markDue) {
      const local = this.#recent.after(jobId, cursor);
      if (local) return this.#noteRead(jobId, local);
    }
    let state: JobState;
    if (markDue) {
      const read = await this.#readOnce(jobId, cursor);
      if (read === null) {
        this.#reads.delete(jobId);
        return unknownJob(cursor);
      }
      this.#track(jobId, { markedAt: now, state: read.state });
      if (read.events.length > 0 || FINAL_STATES.has(read.state)) return read;
      state = read.state;
    } else {
      state = seen.state;
    }
    const waited = await this.#waitForEvents(jobId, cursor, deadline, signal);
    return waited ? this.#noteRead(jobId, waited) : { events: [], cursor, state };
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
        }),
        "reap",
      );
      if (asString(reply[0], "reap") === ScriptStatus.locked) break; // another instance is sweeping
      const [, requeued, failed, cancelled, timedOut, more, touched] = reply;
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

  async fleet(): Promise<FleetStatus> {
    const k = this.#keys;
    const reply = asArray(
      await this.#scripts.run(fleetScript, { workers: k.workers, lanes: k.lanes, running: k.running }, {
        now: this.#opts.now(),
        workerTtlMs: this.#opts.workerTtlMs,
        jobPrefix: this.#prefixes.jobPrefix,
        workerPrefix: this.#prefixes.workerPrefix,
        lanePrefix: this.#prefixes.lanePrefix,
      }),
      "fleet",
    );
    const active = new Map<string, number>();
    const flat = asArray(reply[3], "fleet");
    for (let i = 0; i + 1 < flat.length; i += 2) active.set(asString(flat[i], "fleet"), asNumber(flat[i + 1], "fleet"));
    const workers: WorkerStatus[] = asArray(reply[0], "fleet").map((row) => {
      const [id, info, seen] = asArray(row, "fleet");
      return {
        info: JSON.parse(asString(info, "fleet")),
        lastSeenAt: asNumber(seen, "fleet"),
        activeJobs: active.get(asString(id, "fleet")) ?? 0,
      };
    });
    const queued: Record<string, number> = {};
    for (const row of asArray(reply[1], "fleet")) {
      const [lane, length] = asArray(row, "fleet");
      queued[asString(lane, "fleet")] = asNumber(length, "fleet");
    }
    return { workers, queued, running: asNumber(reply[2], "fleet") };
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

  async addCounters(deltas: Record<string, number>): Promise<void> {
    const pairs = Object.entries(deltas).filter(([, delta]) => delta !== 0 && Number.isFinite(delta));
    if (pairs.length === 0) return;
    await this.#scripts.run(addCountersScript, { counters: this.#keys.counters }, {}, pairs.flat());
  }

  async readCounters(): Promise<Record<string, number>> {
    const flat = asArray(await this.#rest.command(["HGETALL", this.#keys.counters]), "counters");
    const counters: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) counters[asString(flat[i], "counters")] = Number(flat[i + 1]);
    return counters;
  }

  close(): Promise<void> {
    this.#closing.abort();
    return Promise.resolve();
  }

  // --- claims ---------------------------------------------------------------------------------------------

  async #claimOnce(
    req: ClaimRequest,
    activeJobs: string[],
  ): Promise<{ jobs: WorkerJob[]; cancelled: string[]; heldUntil: number }> {
    const k = this.#keys;
    const p = this.#prefixes;
    const now = this.#opts.now();
    const conversations = req.worker.cachedConversations ?? [];
    const reply = asArray(
      await this.#scripts.run(claimScript, {
        worker: k.worker(req.worker.id),
        workers: k.workers,
        workerConversations: k.workerConversations(req.worker.id),
        conversationHolders: k.conversationHolders,
        running: k.running,
        queueDeadlines: k.queueDeadlines,
        lanes: k.lanes,
      }, {
        workerId: req.worker.id,
        info: JSON.stringify(req.worker),
        free: req.worker.free,
        now,
        leaseMs: this.#opts.leaseMs,
        workerTtlMs: this.#opts.workerTtlMs,
        affinityWaitMs: this.#opts.affinityWaitMs,
        max: Math.max(0, req.max),
        jobPrefix: p.jobPrefix,
        lanePrefix: p.lanePrefix,
        affinityPrefix: p.affinityPrefix,
        wakePrefix: p.wakePrefix,
        workerPrefix: p.workerPrefix,
        workerConversationsPrefix: p.workerConversationsPrefix,
        activeCount: activeJobs.length,
        laneCount: req.lanes.length,
        conversationCount: conversations.length,
      }, [...activeJobs, ...req.lanes, ...conversations]),
      "claim",
    );
    const cancelled = asArray(reply[0], "claim").map((id) => asString(id, "claim"));
    const jobs = asArray(reply[1], "claim").map((row) => {
      const [, payload, attempt, deadlineAt] = asArray(row, "claim");
      return {
        ...JSON.parse(asString(payload, "claim")),
        attempt: asNumber(attempt, "claim"),
        deadlineMs: Math.max(0, asNumber(deadlineAt, "claim") - now),
      } as WorkerJob;
    });
    return { jobs, cancelled, heldUntil: asNumber(reply[2], "claim") };
  }

  /** Waits up to `ms` for a job in one of the lanes; true when something may be claimable now. */
  async #waitForLanes(lanes: string[], ms: number, signal: AbortSignal, poll: { backoffMs: number }): Promise<boolean> {
    const topics = lanes.map((lane) => LANE_TOPIC_PREFIX + lane);
    const wakeKeys = lanes.map((lane) => this.#keys.wake(lane));
    const until = performance.now() + ms;
    for (let round = 0;; round++) {
      const left = until - performance.now();
      if (left < (round === 0 ? MIN_WAIT_MS : REMAINDER_MIN_MS) || signal.aborted) return false;
      if (performance.now() < this.#pollUntil || wakeKeys.length === 0) {
        const woken = await this.#wakeup.wait(topics, Math.min(left, poll.backoffMs), signal);
        poll.backoffMs = Math.min(poll.backoffMs * 2, POLL_MAX_MS);
        return woken || !signal.aborted;
      }
      const blockMs = Math.min(left, this.#maxBlockMs);
      const outcome = await this.#race(topics, blockMs, signal, async (abort) => {
        const popped = await this.#rest.command(["BLPOP", ...wakeKeys, (blockMs / 1000).toFixed(3)], {
          signal: abort,
          timeoutMs: blockMs + BLOCK_HTTP_MARGIN_MS,
        });
        return popped === null ? null : true;
      });
      if (outcome.kind !== "timeout") return !signal.aborted;
    }
  }

  // --- reads ----------------------------------------------------------------------------------------------

  /** The read script: batches after `cursor` and the job's state; null for an unknown job. */
  async #readOnce(jobId: string, cursor: string): Promise<ReadResult | null> {
    const k = this.#keys;
    const reply = asArray(
      await this.#scripts.run(
        readEventsScript,
        { job: k.job(jobId), events: k.events(jobId), callers: k.callers },
        { id: jobId, cursor, now: this.#opts.now(), count: READ_BATCH },
      ),
      "read_events",
    );
    if (asString(reply[0], "read_events") === ScriptStatus.unknownJob) return null;
    const entries = parseEntries(reply[2], cursor);
    return entries.length > 0 ? toRead(entries) : { events: [], cursor, state: asState(reply[1]) };
  }

  /**
   * Waits for batches after `cursor` until `deadline` (performance.now()); null when none came. Polling (when
   * blocking is off) uses the read script, which also keeps the caller marked alive.
   */
  async #waitForEvents(
    jobId: string,
    cursor: string,
    deadline: number,
    external?: AbortSignal,
  ): Promise<ReadResult | null> {
    const signal = AbortSignal.any([this.#closing.signal, ...(external ? [external] : [])]);
    const topics = [jobTopic(jobId)];
    const eventsKey = this.#keys.events(jobId);
    let backoffMs = POLL_MIN_MS;
    for (let round = 0;; round++) {
      const left = deadline - performance.now();
      if (left < (round === 0 ? MIN_WAIT_MS : REMAINDER_MIN_MS) || signal.aborted) return null;
      // Its worker posts through this instance: the next batch will most likely arrive here, in memory.
      if (this.#recent.has(jobId)) {
        const woken = await this.#wakeup.wait(topics, Math.min(left, LOCAL_FIRST_MS), signal);
        const local = this.#recent.after(jobId, cursor);
        if (local) return local;
        if (!woken) {
          if (deadline - performance.now() < MIN_WAIT_MS || signal.aborted) return null;
          this.#recent.delete(jobId); // its batches now come through another instance
        }
      }
      const remaining = deadline - performance.now();
      if (remaining < MIN_WAIT_MS) return null;
      if (performance.now() < this.#pollUntil) {
        await this.#wakeup.wait(topics, Math.min(remaining, backoffMs), signal);
        backoffMs = Math.min(Math.max(backoffMs * 2, POLL_MIN_MS), POLL_MAX_MS);
        const local = this.#recent.after(jobId, cursor);
        if (local) return local;
        if (signal.aborted) return null;
        const polled = await this.#readOnce(jobId, cursor);
        if (polled === null) return unknownJob(cursor);
        if (polled.events.length > 0 || FINAL_STATES.has(polled.state)) return polled;
        continue;
      }
      const blockMs = Math.min(remaining, this.#maxBlockMs);
      const outcome = await this.#race(
        topics,
        blockMs,
        signal,
        (abort) => this.#xread(eventsKey, cursor, blockMs, abort),
      );
      if (outcome.kind === "remote") return outcome.value;
      if (outcome.kind === "local") {
        const local = this.#recent.after(jobId, cursor);
        if (local) return local;
      }
      if (outcome.kind === "fallback") backoffMs = 0; // check again at once, by polling
    }
  }

  /** XREAD of the batches after `cursor`, blocking up to `blockMs` (0 = answer at once); null when none. */
  async #xread(eventsKey: string, cursor: string, blockMs: number, signal: AbortSignal): Promise<ReadResult | null> {
    const block = blockMs > 0 ? ["BLOCK", Math.ceil(blockMs)] : [];
    const reply = await this.#rest.command(
      ["XREAD", "COUNT", READ_BATCH, ...block, "STREAMS", eventsKey, cursor === "" ? "0-0" : cursor],
      { signal, timeoutMs: blockMs > 0 ? blockMs + BLOCK_HTTP_MARGIN_MS : undefined },
    );
    if (reply === null) return null;
    const [stream] = asArray(reply, "xread");
    const entries = parseEntries(asArray(stream, "xread")[1], cursor);
    return entries.length > 0 ? toRead(entries) : null;
  }

  #noteRead(jobId: string, read: ReadResult): ReadResult {
    const seen = this.#reads.get(jobId);
    if (seen) seen.state = read.state;
    return read;
  }

  #track(jobId: string, read: { markedAt: number; state: JobState }): void {
    this.#reads.delete(jobId);
    this.#reads.set(jobId, read);
    if (this.#reads.size > TRACKED_READS) this.#reads.delete(this.#reads.keys().next().value!);
  }

  /**
   * Waits for whichever comes first: an in-process wake-up on `topics`, or the blocking command `remote`
   * (which must end within about `ms`). The loser is aborted and awaited, so no request outlives the wait.
   */
  async #race<T>(
    topics: string[],
    ms: number,
    signal: AbortSignal,
    remote: (abort: AbortSignal) => Promise<T | null>,
  ): Promise<RaceOutcome<T>> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    signal.addEventListener("abort", stop, { once: true });
    const local = this.#wakeup.wait(topics, ms, abort.signal);
    const pending = remote(abort.signal);
    try {
      return await new Promise<RaceOutcome<T>>((resolve, reject) => {
        local.then((woken) => woken && resolve({ kind: "local" }));
        pending.then(
          (value) => resolve(value === null ? { kind: "timeout" } : { kind: "remote", value }),
          (err) => {
            if (abort.signal.aborted) return resolve({ kind: "timeout" });
            if (!(err instanceof RedisReplyError || err instanceof StoreError)) return reject(err);
            // Refused by the service: poll from now on. Failed in transit: poll for a while. Either way the caller
            // checks again at once with an ordinary command, which reports a real outage as an error.
            this.#pollUntil = err instanceof RedisReplyError
              ? Number.POSITIVE_INFINITY
              : performance.now() + BLOCKING_RETRY_MS;
            resolve({ kind: "fallback" });
          },
        );
      });
    } finally {
      abort.abort();
      signal.removeEventListener("abort", stop);
      await Promise.allSettled([local, pending]);
    }
  }
}
