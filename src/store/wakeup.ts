/**
 * In-process wake-ups: a waiter parks on topics (a lane, a job's events) until someone notifies one, a timeout
 * passes or its AbortSignal fires. The embedded store uses it for everything; the Upstash store uses it so that a
 * waiter of the same instance may return sooner than its own blocking command would.
 *
 * Two ways of delivering a wake-up:
 * - "direct" (one process serving every request, like Deno): `notify` resolves the waiter's promise at once.
 * - "owned" (Cloudflare Workers): a request must never wait on a promise that another request settles. On workerd
 *   the continuation of a promise resolved from another request's handler runs in THAT request's I/O context: the
 *   woken request's next fetch or stream write then belongs to the notifier (workerd throws "Cannot perform I/O on
 *   behalf of a different request", or cancels the work when the notifier finishes, and the woken request, left
 *   with nothing pending of its own, is cancelled as hung). So in this mode `notify` only marks the waiter, and the
 *   waiter's OWN timer (a short tick set in its own context) sees the mark and resolves its own promise. Abort
 *   signals are read by that tick too, whatever context aborted them. A wake-up can only end a wait sooner; every
 *   wait ends by itself (its timeout) if no wake-up ever comes.
 * - "off": no in-process wake-ups at all (every wait ends by its own blocking command or timer). Tests use it to
 *   prove that wake-ups only ever make a wait end sooner.
 */
export type WakeupDelivery = "direct" | "owned" | "off";

/**
 * How often an owned waiter looks at its mark: the most a same-instance wake-up is delayed. Each tick costs the
 * waiting request CPU on workerd (~0.2 ms measured): 100 ms keeps a 5 s stream read from memory at ~10 ms of ticks;
 * 20 ms cost ~50 ms (bench section cpu).
 */
export const OWNED_TICK_MS = 100;

interface Waiter {
  woken: boolean;
  topics: string[];
  /** Direct mode: ends the wait now. */
  wake?: () => void;
}

export class Wakeup {
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly delivery: WakeupDelivery;
  readonly #tickMs: number;

  constructor(delivery: WakeupDelivery = "direct", tickMs = OWNED_TICK_MS) {
    this.delivery = delivery;
    this.#tickMs = tickMs;
  }

  /** Resolves `true` when notified, `false` on timeout or abort. */
  wait(topics: string[], ms: number, signal?: AbortSignal): Promise<boolean> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve(false);
    const waiter: Waiter = { woken: false, topics };
    const park = () => {
      for (const topic of topics) {
        let set = this.#waiters.get(topic);
        if (!set) this.#waiters.set(topic, set = new Set());
        set.add(waiter);
      }
    };
    const unpark = () => this.#unpark(waiter);
    if (this.delivery === "owned") {
      return new Promise((resolve) => {
        const until = performance.now() + ms;
        const tick = () => {
          const left = until - performance.now();
          if (waiter.woken || signal?.aborted || left <= 0) {
            unpark();
            resolve(waiter.woken);
            return;
          }
          setTimeout(tick, Math.min(this.#tickMs, left));
        };
        park();
        setTimeout(tick, Math.min(this.#tickMs, ms));
      });
    }
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        unpark();
        resolve(woken);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      waiter.wake = () => done(true);
      signal?.addEventListener("abort", onAbort, { once: true });
      park();
    });
  }

  /**
   * Wakes every waiter of `topic` (owned mode: marks them; each one's own tick ends its wait). Marked waiters leave
   * the table here: on workerd a request whose client went away simply stops (its signal never fires, its timers
   * never run), and its waiter must not stay parked forever.
   */
  notify(topic: string): void {
    if (this.delivery === "off") return;
    const set = this.#waiters.get(topic);
    if (!set) return;
    for (const waiter of [...set]) {
      waiter.woken = true;
      this.#unpark(waiter);
      waiter.wake?.();
    }
  }

  #unpark(waiter: Waiter): void {
    for (const topic of waiter.topics) {
      const set = this.#waiters.get(topic);
      set?.delete(waiter);
      if (set?.size === 0) this.#waiters.delete(topic);
    }
  }

  /** Number of parked waiters (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }
}
