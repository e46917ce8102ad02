/**
 * A caller waiting for its job's events on the Upstash store. Cost per read, cheapest first:
 * - a batch posted through this instance is taken from memory (RecentBatches): no command;
 * - otherwise one XREAD BLOCK on the job's stream per batch received;
 * - the read script (which also marks the caller alive) only every callerTimeoutMs/4, and never for the first read
 *   of a job enqueued here (the enqueue marked it).
 * Where in-process wake-ups are on (Deno), a job enqueued here is first awaited in memory for ENQUEUED_LOCAL_FIRST_MS
 * (one router: its worker posts here too), a job whose batches already came through here for LOCAL_FIRST_MS; after
 * that the caller blocks on Redis. Where they are off (workerd) a batch already in memory is taken, else it blocks on
 * Redis at once: nothing else could end a wait in memory sooner than its timer.
 * Where subscriptions are on (Workers) a caller that names itself (`reader`) and streams its answer waits on its own
 * subscription to its job's channel instead (caller-subscriptions.ts, subscription.ts), opened before its job is
 * enqueued (a caller that waits for the whole answer subscribes only once a first batch shows it is long): one
 * SUBSCRIBE for the job's whole answer, plus an XREAD only for a gap (a batch too large to publish, or one published
 * before a subscription opened late was live), and one when it has heard nothing for a while (3 s after its last
 * message, at doubling gaps: a check that finds a batch means it lost messages, and subscriptions pause for the
 * instance; a subscription opened after the enqueue also checks once 1 s after Redis confirmed it, to catch up).
 * Every wait is the caller's own: its XREAD, its subscription, or its own timer (in-process wake-ups end a wait in
 * memory sooner).
 * A caller that has seen no batch RECOVER_FIRST_MS after it began waiting runs the read script's recovery check, then
 * at doubling gaps: a queued job's lane with no wake token is woken again (a poll took the token and never claimed),
 * and a job claimed by a poll that outlived its worker (under workerd a poll whose client left still runs, and its
 * BLPOP, first in Redis's queue, takes the next job's token and claims it) goes back to its lane. Without it the job
 * waits for the parked workers' own BLPOPs or the lease to end (~50 s). Only that slow path pays (one read script
 * per gap: jobs start and post progress within about a second); see docs/store.md, "Lost wake-ups".
 */
import { callerStreams } from "../../protocol/worker-protocol.ts";
import { jobTopic } from "../shared.ts";
import type { JobState, NewJob, ReadResult } from "../store.ts";
import { readEventsScript } from "./lua/read-events.ts";
import { ScriptStatus } from "./lua/runner.ts";
import {
  BLOCK_HTTP_MARGIN_MS,
  MIN_WAIT_MS,
  POLL_MAX_MS,
  POLL_MIN_MS,
  REMAINDER_MIN_MS,
  type UpstashParts,
  WAKE_CAP,
  WAKE_TTL_MS,
} from "./parts.ts";
import { asArray, asState, asString, parseEntries, toRead, unknownJob } from "./replies.ts";
import { CallerSubscriptions, FINAL_STATES } from "./caller-subscriptions.ts";

/** Stream entries (batches) returned by one read. */
const READ_BATCH = 1_000;
/** A reader whose job's batches come through this instance waits this long in memory before XREAD (> the
 * workers' longest flush interval on this store, 1 s, so a steady stream never falls back to XREAD). */
const LOCAL_FIRST_MS = 2_000;
/** A reader of a job enqueued here, before any batch: its first batch most likely comes through here too. */
const ENQUEUED_LOCAL_FIRST_MS = 300;
/** A caller with no batch yet runs the recovery check after this long, then at doubling gaps up to RECOVER_MAX_MS. */
const RECOVER_FIRST_MS = 2_000;
const RECOVER_MAX_MS = 16_000;
/** A claimed job whose worker posted nothing for this long is taken back (live workers post progress every second). */
const UNCONFIRMED_MS = 4_000;
/** Jobs whose reads are tracked here at most. */
const TRACKED_READS = 10_000;

interface Tracked {
  /** When the caller was last marked alive in Redis (the store's clock). */
  markedAt: number;
  state: JobState;
  /** Enqueued through this instance and no batch seen yet. */
  enqueuedHere: boolean;
  /** Until a batch is seen: when (performance.now()) the recovery check is due, and the gap after that. */
  recoverAt: number;
  recoverGapMs: number;
  /** A batch of the job has been seen: it started, no recovery check is needed. */
  sawBatch: boolean;
  /** Enqueued here for a caller that waits for the whole answer: it waits for its first batch by XREAD BLOCK. */
  whole?: boolean;
}

export class Reads {
  readonly #parts: UpstashParts;
  readonly #reads = new Map<string, Tracked>();

  readonly #subscriptions: CallerSubscriptions;

  constructor(parts: UpstashParts) {
    this.#parts = parts;
    this.#subscriptions = new CallerSubscriptions(parts, (key, cursor, signal) => this.#xread(key, cursor, 0, signal));
  }

  /**
   * Before its job is enqueued: a streamed answer's caller subscribes (CallerSubscriptions.watch). Any other answer
   * most likely comes whole in one batch, which its caller's first wait takes with one XREAD BLOCK (below).
   */
  async watch(job: NewJob, reader: object, signal?: AbortSignal): Promise<void> {
    if (callerStreams(job.payload)) await this.#subscriptions.watch(job.id, reader, signal);
  }

  /** A job that could not be enqueued: its reader's subscription, if one was opened for it, is closed. */
  unwatch(jobId: string, reader: object): void {
    this.#subscriptions.close(jobId, reader);
  }

  /** A job this instance just enqueued: its caller is marked alive already (the enqueue script did it). */
  enqueued(job: NewJob): void {
    const now = this.#parts.opts.now();
    const whole = !callerStreams(job.payload);
    this.#track(job.id, { markedAt: now, state: "queued", enqueuedHere: true, whole, ...firstRecover() });
  }

  /** Closes every open subscription (the store is closing). */
  close(): void {
    this.#subscriptions.closeAll();
  }

  async readEvents(
    jobId: string,
    cursor: string,
    waitMs: number,
    signal?: AbortSignal,
    reader?: object,
  ): Promise<ReadResult> {
    const deadline = performance.now() + waitMs;
    const now = this.#parts.opts.now();
    const seen = this.#reads.get(jobId);
    // A read that may not wait must ask Redis: only a waiting read learns what is new by XREAD or from memory.
    const markDue = !seen || FINAL_STATES.has(seen.state) || waitMs < MIN_WAIT_MS ||
      now - seen.markedAt >= this.#parts.opts.callerTimeoutMs / 4;
    if (!markDue) {
      const local = this.#parts.recent.after(jobId, cursor);
      if (local) return this.#noteRead(jobId, local, reader);
    }
    let state: JobState;
    if (markDue) {
      const read = await this.#readOnce(jobId, cursor);
      if (read === null) {
        this.#reads.delete(jobId);
        return unknownJob(cursor);
      }
      const recover = seen
        ? { recoverAt: seen.recoverAt, recoverGapMs: seen.recoverGapMs, sawBatch: seen.sawBatch }
        : firstRecover();
      this.#track(jobId, { markedAt: now, state: read.state, enqueuedHere: false, whole: seen?.whole, ...recover });
      if (read.events.length > 0 || FINAL_STATES.has(read.state)) return this.#noteRead(jobId, read, reader);
      state = read.state;
    } else {
      state = seen.state;
    }
    const waited = await this.#waitForEvents(jobId, cursor, deadline, signal, reader);
    return waited ? this.#noteRead(jobId, waited, reader) : { events: [], cursor, state };
  }

  /** The read script: batches after `cursor` and the job's state; null for an unknown job. With `recover`, its
   * recovery check (see the module comment). */
  async #readOnce(jobId: string, cursor: string, recover = false): Promise<ReadResult | null> {
    const { keys: k, prefixes: p } = this.#parts;
    const reply = asArray(
      await this.#parts.scripts.run(
        readEventsScript,
        {
          job: k.job(jobId),
          events: k.events(jobId),
          callers: k.callers,
          running: k.running,
          lanes: k.lanes,
          queueDeadlines: k.queueDeadlines,
        },
        {
          id: jobId,
          cursor,
          now: this.#parts.opts.now(),
          count: READ_BATCH,
          recover: recover ? 1 : 0,
          unconfirmedMs: UNCONFIRMED_MS,
          lanePrefix: p.lanePrefix,
          affinityPrefix: p.affinityPrefix,
          wakePrefix: p.wakePrefix,
          wakeCap: WAKE_CAP,
          wakeTtlMs: WAKE_TTL_MS,
          handoffPrefix: p.handoffPrefix,
        },
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
    reader?: object,
  ): Promise<ReadResult | null> {
    const parts = this.#parts;
    const signal = parts.signal(external);
    const topics = [jobTopic(jobId)];
    const eventsKey = parts.keys.events(jobId);
    let backoffMs = POLL_MIN_MS;
    for (let round = 0;; round++) {
      const left = deadline - performance.now();
      if (left < (round === 0 ? MIN_WAIT_MS : REMAINDER_MIN_MS) || signal.aborted) return null;
      // Its batches come (or most likely will come) through this instance: wait for them in memory first — where
      // wake-ups are delivered. Without them (workerd) a batch already here is still taken, then Redis is asked.
      const enqueuedHere = this.#reads.get(jobId)?.enqueuedHere === true;
      if (!parts.wakeup.delivers) {
        const local = parts.recent.after(jobId, cursor);
        if (local) return local;
      } else if (parts.recent.has(jobId) || enqueuedHere) {
        const localMs = parts.recent.has(jobId) ? LOCAL_FIRST_MS : ENQUEUED_LOCAL_FIRST_MS;
        const woken = await parts.wakeup.wait(topics, Math.min(left, localMs), signal);
        const local = parts.recent.after(jobId, cursor);
        if (local) return local;
        if (!woken) {
          if (deadline - performance.now() < MIN_WAIT_MS || signal.aborted) return null;
          parts.recent.delete(jobId); // its batches now come through another instance
          const tracked = this.#reads.get(jobId);
          if (tracked) tracked.enqueuedHere = false;
        }
      }
      const remaining = deadline - performance.now();
      if (remaining < MIN_WAIT_MS) return null;
      if (parts.polling) {
        await parts.wakeup.wait(topics, Math.min(remaining, backoffMs), signal);
        backoffMs = Math.min(Math.max(backoffMs * 2, POLL_MIN_MS), POLL_MAX_MS);
        const local = parts.recent.after(jobId, cursor);
        if (local) return local;
        if (signal.aborted) return null;
        const polled = await this.#readOnce(jobId, cursor, this.#recoverIn(jobId) <= 0);
        if (polled === null) return unknownJob(cursor);
        this.#afterRead(jobId, polled);
        if (polled.events.length > 0 || FINAL_STATES.has(polled.state)) return polled;
        continue;
      }
      // No batch yet past the recovery time: the recovery check (see the module comment) also marks the caller alive.
      const recoverIn = this.#recoverIn(jobId);
      if (recoverIn <= 0) {
        const read = await this.#readOnce(jobId, cursor, true);
        if (read === null) return unknownJob(cursor);
        this.#afterRead(jobId, read);
        if (read.events.length > 0 || FINAL_STATES.has(read.state)) return read;
        continue;
      }
      const blockMs = Math.min(remaining, parts.maxBlockMs, Math.max(recoverIn, MIN_WAIT_MS));
      // A caller that waits for the whole answer subscribes only once a first batch shows the answer is long: most
      // come in one batch, which one XREAD BLOCK takes as cheaply as a SUBSCRIBE does and with less work on workerd
      // (no event stream to open, read and close). A streamed answer's subscription is open since its enqueue.
      const tracked = this.#reads.get(jobId);
      if (reader && parts.subscribing && !(tracked?.whole && !tracked.sawBatch)) {
        const heard = await this.#subscriptions.read(jobId, cursor, performance.now() + blockMs, signal, reader);
        if (heard !== "xread") {
          if (heard) return heard;
          continue;
        }
      }
      const outcome = await parts.block(signal, (abort) => this.#xread(eventsKey, cursor, blockMs, abort));
      if (outcome.kind === "remote") return outcome.value;
      if (outcome.kind === "fallback") backoffMs = 0; // check again at once, by polling
    }
  }

  /** Milliseconds until the job's recovery check is due (<= 0: now); Infinity once a batch was seen or it ended. */
  #recoverIn(jobId: string): number {
    const tracked = this.#reads.get(jobId);
    if (!tracked || tracked.sawBatch || FINAL_STATES.has(tracked.state)) return Number.POSITIVE_INFINITY;
    return tracked.recoverAt - performance.now();
  }

  /** After a read script run while waiting: the caller was marked alive; a due recovery check moves to the next gap. */
  #afterRead(jobId: string, read: ReadResult): void {
    const tracked = this.#reads.get(jobId);
    if (!tracked) return;
    tracked.markedAt = this.#parts.opts.now();
    tracked.state = read.state;
    if (read.events.length > 0) tracked.sawBatch = true;
    if (tracked.recoverAt <= performance.now()) {
      tracked.recoverAt = performance.now() + tracked.recoverGapMs;
      tracked.recoverGapMs = Math.min(tracked.recoverGapMs * 2, RECOVER_MAX_MS);
    }
  }

  /** XREAD of the batches after `cursor`, blocking up to `blockMs` (0 = answer at once); null when none. */
  async #xread(eventsKey: string, cursor: string, blockMs: number, signal: AbortSignal): Promise<ReadResult | null> {
    const block = blockMs > 0 ? ["BLOCK", Math.ceil(blockMs)] : [];
    const reply = await this.#parts.rest.command(
      ["XREAD", "COUNT", READ_BATCH, ...block, "STREAMS", eventsKey, cursor === "" ? "0-0" : cursor],
      { signal, timeoutMs: blockMs > 0 ? blockMs + BLOCK_HTTP_MARGIN_MS : undefined },
    );
    if (reply === null) return null;
    const [stream] = asArray(reply, "xread");
    const entries = parseEntries(asArray(stream, "xread")[1], cursor);
    return entries.length > 0 ? toRead(entries) : null;
  }

  #noteRead(jobId: string, read: ReadResult, reader: object | undefined): ReadResult {
    if (FINAL_STATES.has(read.state)) this.#subscriptions.close(jobId, reader);
    const seen = this.#reads.get(jobId);
    if (seen) {
      seen.state = read.state;
      seen.enqueuedHere = false;
      if (read.events.length > 0) seen.sawBatch = true;
    }
    return read;
  }

  #track(jobId: string, read: Tracked): void {
    this.#reads.delete(jobId);
    this.#reads.set(jobId, read);
    if (this.#reads.size > TRACKED_READS) this.#reads.delete(this.#reads.keys().next().value!);
  }
}

function firstRecover(): Pick<Tracked, "recoverAt" | "recoverGapMs" | "sawBatch"> {
  return { recoverAt: performance.now() + RECOVER_FIRST_MS, recoverGapMs: RECOVER_FIRST_MS * 2, sawBatch: false };
}
