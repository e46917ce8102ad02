/**
 * In-process wake-ups: a waiter parks on a topic (a lane, a job's events) until someone notifies it, a timeout
 * passes or its AbortSignal fires. Both stores use it — the embedded store for everything, the Upstash store to
 * wake waiters of the same instance without a Redis round trip. Every timer is cleared on wake (no leaked timers).
 */
export class Wakeup {
  #waiters = new Map<string, Set<() => void>>();

  /** Resolves `true` when notified, `false` on timeout or abort. */
  wait(topics: string[], ms: number, signal?: AbortSignal): Promise<boolean> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        for (const topic of topics) {
          const set = this.#waiters.get(topic);
          set?.delete(wake);
          if (set?.size === 0) this.#waiters.delete(topic);
        }
        resolve(woken);
      };
      const wake = () => done(true);
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      signal?.addEventListener("abort", onAbort, { once: true });
      for (const topic of topics) {
        let set = this.#waiters.get(topic);
        if (!set) this.#waiters.set(topic, set = new Set());
        set.add(wake);
      }
    });
  }

  /** Wakes every waiter of `topic`. */
  notify(topic: string): void {
    const set = this.#waiters.get(topic);
    if (!set) return;
    for (const wake of [...set]) wake();
  }

  /** Number of parked waiters (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }
}
