/**
 * In-process wake-ups: a waiter parks on topics (a lane, a job's events) until someone notifies one, its own timer
 * ends the wait, or its AbortSignal fires. The embedded store uses it for everything; the Upstash store uses it so
 * that a waiter of the same instance may return sooner than its own blocking command or timer would.
 *
 * Every wait is its waiter's own: `wait` creates the promise in the waiting request and sets the timer that ends it
 * by itself; a notify from anywhere may only end it sooner.
 *
 * Delivery:
 * - "direct": `notify` resolves the waiter's promise at once. Deno, where every request shares one event loop.
 * - "off": no in-process wake-ups at all (every wait ends by its own blocking command or timer). Cloudflare Workers:
 *   there a notify from request B settles a promise request A awaits, and workerd (`handle_cross_request_promise_
 *   resolution`) runs A's continuation in A's request only at low concurrency — at 32 or more requests at once it
 *   begins failing every such request after some thousands of wake-ups ("Worker's code had hung", or A's response
 *   built in B's context: "Cannot perform I/O on behalf of a different request") and stays broken
 *   (bench/workerd-wake-probe.ts; docs/store.md, "Who owns a wait"). Tests also use "off" to prove that wake-ups
 *   only ever make a wait end sooner.
 */
export type WakeupDelivery = "direct" | "off";

/**
 * A waiter still in the table this long after its own timer should have ended its wait belongs to a request that
 * stopped (on Workers a request whose client left may never run its timers again): it is dropped from the table,
 * without settling its promise (no continuation is run for a request that has ended).
 */
const STALE_GRACE_MS = 5_000;
/** Parks between two looks for stale waiters. */
const PRUNE_EVERY = 256;

interface Waiter {
  topics: string[];
  /** When (the Wakeup's clock) the waiter's own timer ends the wait. */
  until: number;
  /** Ends the wait now (woken). */
  wake: () => void;
}

export class Wakeup {
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly delivery: WakeupDelivery;
  readonly #now: () => number;
  #parks = 0;

  /** `now`: the clock that dates waiters (tests move it). */
  constructor(delivery: WakeupDelivery = "direct", now: () => number = () => performance.now()) {
    this.delivery = delivery;
    this.#now = now;
  }

  /** Resolves `true` when notified, `false` when its own timer ends the wait or on abort. */
  wait(topics: string[], ms: number, signal?: AbortSignal): Promise<boolean> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#unpark(waiter);
        resolve(woken);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      const waiter: Waiter = { topics, until: this.#now() + ms, wake: () => done(true) };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (this.delivery === "off") return;
      if (++this.#parks % PRUNE_EVERY === 0) this.#pruneStale();
      for (const topic of topics) {
        let set = this.#waiters.get(topic);
        if (!set) this.#waiters.set(topic, set = new Set());
        set.add(waiter);
      }
    });
  }

  /** Whether `notify` ends waits at all ("direct"); with "off" a wait is only its own timer. */
  get delivers(): boolean {
    return this.delivery === "direct";
  }

  /** Wakes every waiter of `topic`. */
  notify(topic: string): void {
    const set = this.#waiters.get(topic);
    if (!set) return;
    for (const waiter of [...set]) waiter.wake();
  }

  #unpark(waiter: Waiter): void {
    for (const topic of waiter.topics) {
      const set = this.#waiters.get(topic);
      set?.delete(waiter);
      if (set?.size === 0) this.#waiters.delete(topic);
    }
  }

  #pruneStale(): void {
    const staleBefore = this.#now() - STALE_GRACE_MS;
    for (const set of [...this.#waiters.values()]) {
      for (const waiter of [...set]) if (waiter.until < staleBefore) this.#unpark(waiter);
    }
  }

  /** Number of parked waiters (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }
}
