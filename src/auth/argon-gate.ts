/**
 * Who runs Argon2id next. Argon2id is only needed until a role's one valid key has been verified once in the
 * deployment (src/auth/verifier.ts); until then a flood of wrong keys competes with the valid key for it. Each
 * verification holds the event loop ~100 ms, so they are rationed for the whole instance (a token bucket and a
 * concurrency limit) — but a key waiting for its turn is not refused for that: it waits, in an order that puts
 * clients with no recent failures before clients that have failed, and first come first served within each. A flood
 * from one address therefore only delays itself; a valid caller on another address goes next.
 *
 * Waits follow the workerd rule: a waiting request sleeps on its own short timer and re-checks; a release elsewhere
 * in the isolate only wakes it sooner. No request waits on a promise that another request settles.
 */
import { ApiError } from "../http/errors.ts";
import type { KeyRole } from "./keys.ts";

export interface GateOptions {
  now: () => number;
  /** Argon2id verifications per second for the whole instance (token bucket; burst = rate). */
  ratePerSecond: number;
  /** Verifications running at once (they interleave only across awaits: the WASM itself is synchronous). */
  maxConcurrent: number;
  /** Keys waiting for a turn, in all, and per client address. */
  maxWaiting: number;
  maxWaitingPerClient: number;
  /** Longest a key waits for its turn before a 429. */
  maxWaitMs: number;
  /**
   * Whether a release may end another request's wait sooner (default true). Off under workerd: there a request
   * must not settle a promise another request awaits (docs/store.md, "Who owns a wait"); waits end by their timer.
   */
  crossRequestWakeups?: boolean;
}

interface Ticket {
  seq: number;
  client: string;
  role: KeyRole;
  /** The key's digest: requests presenting one key share its verification. */
  key: string;
  /** Asked afresh each time: a client that fails while waiting drops behind at once. */
  lowPriority: () => boolean;
  wake?: () => void;
  refused?: ApiError;
}

/** What a waiter asks on each wake-up: a result that ends its wait without a turn, or undefined to keep waiting. */
export type WaitCheck<T> = () => { done: T } | undefined;

const RECHECK_MS = 100;

export class ArgonGate {
  readonly #opts: GateOptions;
  readonly #waiting: Ticket[] = [];
  #running = 0;
  #budget: number;
  #budgetAt: number;
  #seq = 0;
  /** Keys (digests) being verified now: the same key waits for that result rather than being verified twice. */
  readonly #busy = new Set<string>();
  /** Keys refused a turn (429), for /metrics and tests. */
  refused = 0;

  constructor(options: GateOptions) {
    this.#opts = options;
    this.#budget = options.ratePerSecond;
    this.#budgetAt = options.now();
  }

  /** Waits until `key` may run Argon2id (`{turn: true}`; call `release(key)` after) or `check` settles it. */
  async acquire<T>(
    client: string,
    role: KeyRole,
    key: string,
    lowPriority: () => boolean,
    check: WaitCheck<T>,
  ): Promise<
    { turn: true } | { turn: false; done: T }
  > {
    const first = check();
    if (first) return { turn: false, done: first.done };
    const ticket: Ticket = { seq: this.#seq++, client, role, key, lowPriority };
    this.#admit(ticket);
    const deadline = this.#opts.now() + this.#opts.maxWaitMs;
    try {
      for (;;) {
        if (ticket.refused) throw ticket.refused;
        const state = check();
        if (state) return { turn: false, done: state.done };
        if (!this.#busy.has(key) && this.#isNext(ticket) && this.#take()) {
          this.#busy.add(key);
          return { turn: true };
        }
        if (this.#opts.now() >= deadline) {
          this.refused++;
          throw new ApiError("rate_limit", "Too many new keys to verify right now; retry shortly.", {
            retryAfterSeconds: 1,
          });
        }
        // The timer is this request's own, and only this request clears it (after waking, in its own context).
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          timer = setTimeout(resolve, RECHECK_MS);
          if (this.#opts.crossRequestWakeups !== false) ticket.wake = resolve;
        });
        clearTimeout(timer);
        ticket.wake = undefined;
      }
    } finally {
      const index = this.#waiting.indexOf(ticket);
      if (index >= 0) this.#waiting.splice(index, 1);
    }
  }

  release(key: string): void {
    this.#running--;
    this.#busy.delete(key);
    // Wake the next waiter of each role sooner than its own timer would (clients without failures first).
    const woken = new Set<KeyRole>();
    for (const ticket of this.#ordered()) {
      if (woken.has(ticket.role)) continue;
      woken.add(ticket.role);
      ticket.wake?.();
    }
  }

  #admit(ticket: Ticket): void {
    // A burst of requests presenting one key (a caller's or a worker fleet's first requests) is one key to verify:
    // they wait for the same verification, and count once against the limits, which bound the keys waiting — so a
    // key that verifies is never refused for arriving many times at once.
    if (this.#busy.has(ticket.key) || this.#waiting.some((t) => t.key === ticket.key)) {
      this.#waiting.push(ticket);
      return;
    }
    const keysOf = (tickets: Ticket[]) => new Set(tickets.map((t) => t.key)).size;
    const sameClient = keysOf(this.#waiting.filter((t) => t.client === ticket.client));
    if (sameClient >= this.#opts.maxWaitingPerClient) {
      this.refused++;
      throw new ApiError("rate_limit", "Too many keys from this address are waiting for verification; retry later.", {
        retryAfterSeconds: 2,
      });
    }
    if (keysOf(this.#waiting) >= this.#opts.maxWaiting) {
      // A full queue gives way to a client that has not failed: the newest waiter of a failing client leaves.
      const victim = ticket.lowPriority() ? undefined : this.#ordered().reverse().find((t) => t.lowPriority());
      if (!victim) {
        this.refused++;
        throw new ApiError("rate_limit", "Too many new keys to verify right now; retry shortly.", {
          retryAfterSeconds: 1,
        });
      }
      this.refused++;
      victim.refused = new ApiError("rate_limit", "Too many new keys to verify right now; retry shortly.", {
        retryAfterSeconds: 1,
      });
      this.#waiting.splice(this.#waiting.indexOf(victim), 1);
      victim.wake?.();
    }
    this.#waiting.push(ticket);
  }

  /** Waiters in the order they get turns: clients without failures first, then by arrival. */
  #ordered(): Ticket[] {
    const rank = (t: Ticket) => (t.lowPriority() ? 1e15 : 0) + t.seq;
    return [...this.#waiting].sort((a, b) => rank(a) - rank(b));
  }

  /**
   * Whether this waiter's turn has come: no waiter of a client without failures (of any role: the budget is shared)
   * is before it, and within its own priority and role, no earlier waiter.
   */
  #isNext(ticket: Ticket): boolean {
    const low = ticket.lowPriority();
    for (const other of this.#waiting) {
      if (other === ticket) continue;
      const otherLow = other.lowPriority();
      if (!otherLow && low) return false;
      if (other.role === ticket.role && otherLow === low && other.seq < ticket.seq) return false;
    }
    return true;
  }

  #take(): boolean {
    const now = this.#opts.now();
    const rate = this.#opts.ratePerSecond;
    this.#budget = Math.min(rate, this.#budget + Math.max(0, now - this.#budgetAt) * rate / 1000);
    this.#budgetAt = now;
    if (this.#running >= this.#opts.maxConcurrent || this.#budget < 1) return false;
    this.#budget--;
    this.#running++;
    return true;
  }
}
