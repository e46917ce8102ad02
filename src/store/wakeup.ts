/**
 * In-process wake-ups: a waiter parks on topics (a lane, a job's events) until someone notifies one, its own timer
 * ends the wait, or its AbortSignal fires. The embedded store uses it for everything; the Upstash store uses it so
 * that a waiter of the same instance may return sooner than its own blocking command or timer would.
 *
 * Every wait is its waiter's own: `wait` creates the promise in the waiting request and sets the timer that ends it
 * by itself; a notify from anywhere may only end it sooner. That is what makes direct delivery safe on Cloudflare
 * Workers too: there (compatibility date ≥ 2024-10-14, `handle_cross_request_promise_resolution`) a promise settles
 * in the request that CREATED it, so a notify from request B runs the woken request A's continuation in A's own I/O
 * context, and A's next fetch or stream write is A's. Checked against the real workerd binary by
 * tests/workers/cross-request-wake.test.ts, which also shows the failure without the flag ("Worker's code had hung").
 * The converse stays forbidden (docs/store.md): a request must never await a promise that another request created
 * (a shared in-flight fetch): with the flag that promise settles in its creator's context and fails once that
 * request has ended.
 *
 * Delivery:
 * - "direct": `notify` resolves the waiter's promise at once (Deno and Workers).
 * - "off": no in-process wake-ups at all (every wait ends by its own blocking command or timer). Tests use it to
 *   prove that wake-ups only ever make a wait end sooner.
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
