/**
 * The subscriptions of this instance's callers (Workers), one per reading request: each is opened by its reader,
 * before its job is enqueued (`watch`) or on its first wait (`read`), read only by that reader and closed by it
 * (subscription.ts is one subscription; docs/store.md, "A caller's subscription"). reads.ts decides when a wait uses
 * one; this decides what a wait on one returns, and when the instance stops using them for a while.
 */
import type { JobState, ReadResult } from "../store.ts";
import type { UpstashParts } from "./parts.ts";
import { toRead } from "./replies.ts";
import { JobSubscription } from "./subscription.ts";

/** A subscription Redis has not confirmed this long after it was opened is not working here: XREAD instead. */
const CONFIRM_MS = 2_000;
/**
 * How long a caller waits for Redis to confirm the subscription it opens before enqueueing its job. Confirmed, it
 * hears every batch of the job; not confirmed by then, the job is enqueued anyway and the subscription is treated as
 * one opened after the enqueue (its catch-up read, CONFIRM_MS).
 */
const WATCH_CONFIRM_MS = 500;
/** Subscriptions tracked per instance at most (past it the oldest is forgotten: its reader opens a new one). */
const SUBSCRIPTIONS_MAX = 1_000;
/** A subscription the service ended sooner than this after it was opened: subscriptions pause for the instance
 * rather than cost a SUBSCRIBE per wait (a proxy cutting event streams short, say). */
const SHORT_LIVED_MS = 10_000;

export const FINAL_STATES: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);

/** One XREAD (not blocking) of the batches after `cursor`; null when there are none. */
type ReadOnce = (eventsKey: string, cursor: string, signal: AbortSignal) => Promise<ReadResult | null>;

export class CallerSubscriptions {
  readonly #parts: UpstashParts;
  readonly #xread: ReadOnce;
  /** Open subscriptions by job, each read only by its owner (subscription.ts). */
  readonly #subscriptions = new Map<string, JobSubscription>();
  /** The job each reader is subscribed for: a reader that moves on to another job (a continuation) closes the last. */
  readonly #subscribedJob = new WeakMap<object, string>();

  constructor(parts: UpstashParts, xread: ReadOnce) {
    this.#parts = parts;
    this.#xread = xread;
  }

  /**
   * Called by the caller just before it enqueues its job: subscribes to the job's channel and waits (at most
   * WATCH_CONFIRM_MS) for Redis to confirm it. Then every batch of the job is published to a live subscription: no
   * catch-up read, and no wait for one when the worker answers before a subscription opened after the enqueue would
   * have been live (a job handed straight to a parked worker can be answered within milliseconds). Costs the caller
   * one round trip to Upstash before its enqueue; the SUBSCRIBE itself it would have sent anyway.
   */
  async watch(jobId: string, reader: object, external?: AbortSignal): Promise<void> {
    const parts = this.#parts;
    if (!parts.subscribing) return;
    const signal = parts.signal(external);
    let subscription: JobSubscription;
    try {
      subscription = await JobSubscription.open(parts.rest, parts.keys.events(jobId), reader, signal);
    } catch (err) {
      if (!signal.aborted) parts.subscribeFailed(err);
      return;
    }
    this.#adopt(jobId, subscription, reader);
    await subscription.confirmBeforeJob(performance.now() + WATCH_CONFIRM_MS);
  }

  /**
   * Waits on the reader's subscription to the job's channel (opened before the enqueue or on its first wait) until
   * `until`: the batches
   * that continue from `cursor`, null when none came in time, "xread" when this wait must use XREAD instead (the
   * job's subscription belongs to another reader, or none could be opened).
   */
  async read(
    jobId: string,
    cursor: string,
    until: number,
    signal: AbortSignal,
    reader: object,
  ): Promise<ReadResult | null | "xread"> {
    const parts = this.#parts;
    let subscription = this.#subscriptions.get(jobId);
    if (subscription && subscription.owner !== reader) return "xread";
    if (subscription?.ended) {
      // Ended by the service: a new one must catch up again, unless they end as soon as they open here.
      this.close(jobId, reader);
      if (performance.now() - subscription.openedAt < SHORT_LIVED_MS) {
        parts.subscribeFailed(new Error("subscription ended at once"));
        return "xread";
      }
      subscription = undefined;
    }
    if (!subscription) {
      try {
        subscription = await JobSubscription.open(parts.rest, parts.keys.events(jobId), reader, signal);
      } catch (err) {
        if (signal.aborted) return null;
        parts.subscribeFailed(err);
        return "xread";
      }
      this.#adopt(jobId, subscription, reader);
    }
    const eventsKey = parts.keys.events(jobId);
    for (;;) {
      const taken = subscription.take(cursor);
      if (taken.kind === "entries") {
        subscription.synced = true;
        return this.#ended(jobId, toRead(taken.entries), reader);
      }
      if (taken.kind === "gap") {
        const read = await this.#xread(eventsKey, cursor, signal);
        subscription.synced = true; // read after the confirmation (messages come only after it)
        if (read) return this.#ended(jobId, read, reader);
        subscription.dropBuffered(); // the stream no longer holds them (expired): nothing to fill
        continue;
      }
      const now = performance.now();
      if (!subscription.confirmed && (subscription.ended || now >= subscription.openedAt + CONFIRM_MS)) {
        // Open but never confirmed (a proxy holding the event stream back, say): not usable here for a while.
        this.close(jobId, reader);
        parts.subscribeFailed(new Error("subscription not confirmed"));
        return "xread";
      }
      if (now >= subscription.checkAt) {
        // Nothing heard for a while (see subscription.ts): what the stream holds past the cursor, read once. Right
        // after the confirmation that is the catch-up; later, a batch found means messages were lost.
        const lost = subscription.synced;
        subscription.synced = true;
        const read = await this.#xread(eventsKey, cursor, signal);
        if (!read) {
          subscription.checked();
          continue;
        }
        if (lost) {
          this.close(jobId, reader);
          parts.subscribeFailed(new Error("subscription lost messages"));
        }
        return this.#ended(jobId, read, reader);
      }
      if (subscription.ended) return "xread";
      if (signal.aborted || now >= until) return null;
      const checkAt = Number.isNaN(subscription.checkAt) ? subscription.openedAt + CONFIRM_MS : subscription.checkAt;
      await subscription.receive(Math.min(until, checkAt));
    }
  }

  /** A read while subscribed: a job that ended needs its subscription no more. */
  #ended(jobId: string, read: ReadResult, reader: object): ReadResult {
    if (FINAL_STATES.has(read.state)) this.close(jobId, reader);
    return read;
  }

  /** Closes the job's subscription if `reader` owns it: a request never touches another request's fetch (on
   * workerd, I/O objects belong to the request that created them). */
  close(jobId: string, reader: object | undefined): void {
    const subscription = this.#subscriptions.get(jobId);
    if (!subscription || subscription.owner !== reader) return;
    subscription.close();
    this.#subscriptions.delete(jobId);
  }

  /** Closes every open subscription (the store is closing). */
  closeAll(): void {
    for (const subscription of this.#subscriptions.values()) subscription.close();
    this.#subscriptions.clear();
  }

  /** Records `reader`'s new subscription; the one it had for an earlier job (a continuation's) is closed. */
  #adopt(jobId: string, subscription: JobSubscription, reader: object): void {
    const previous = this.#subscribedJob.get(reader);
    if (previous !== undefined && previous !== jobId) this.close(previous, reader);
    this.#subscriptions.set(jobId, subscription);
    this.#subscribedJob.set(reader, jobId);
    // Past the cap the oldest is forgotten, not closed: only its own request may touch its fetch (it ends with
    // that request, or when its job ends).
    if (this.#subscriptions.size > SUBSCRIPTIONS_MAX) {
      this.#subscriptions.delete(this.#subscriptions.keys().next().value!);
    }
  }
}
