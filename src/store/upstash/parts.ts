/**
 * What the pieces of the Upstash store share (REST client, scripts, keys, options, in-process wake-ups, recent
 * batches), and the one way they block: `block`, the caller's own blocking Redis command.
 *
 * The waiting rule (see docs/store.md, "Who owns a wait"): every waiting request owns its wait — its
 * own blocking command, or its own timer-driven poll — and an in-process wake-up may only make that wait end
 * sooner. Nothing here lets a request await a promise that another request created: a waiter's wake-up promise is
 * created by the waiter itself (src/store/wakeup.ts). On Workers in-process wake-ups are off altogether (workerd fails
 * under concurrency when one request settles another's promise), so there every wait is its command or its timer.
 */
import type { StoreOptions } from "../store.ts";
import { StoreError } from "../store.ts";
import { Wakeup, type WakeupDelivery } from "../wakeup.ts";
import { keyPrefixes, type StoreKeys, storeKeys } from "./keys.ts";
import { ScriptRunner } from "./lua/runner.ts";
import { RecentBatches } from "./recent.ts";
import { RedisReplyError, UpstashRest } from "./rest.ts";

export type BlockOutcome<T> =
  | { kind: "remote"; value: T }
  | { kind: "timeout" }
  | { kind: "fallback" };

/** Added to a blocking command's own timeout for its HTTP timeout. */
export const BLOCK_HTTP_MARGIN_MS = 10_000;
/** Shorter waits are not worth a blocking command. */
export const MIN_WAIT_MS = 50;
/** After a full blocking period, a remainder shorter than this is not worth another command. */
export const REMAINDER_MIN_MS = 500;
/** Wake tokens kept per lane, and how long an unconsumed one lives. */
export const WAKE_CAP = 8;
export const WAKE_TTL_MS = 60_000;
/**
 * How long a worker stays parked (handed the next job by an enqueue, lua/enqueue.ts) after its last claim or
 * finished job: an idle worker's polls wait first, with no script, for up to 90 s after its last claim (claims.ts),
 * and a poll lasts up to 50 s. A worker that stops cleanly unparks with its last poll; one that dies parked costs
 * the next job a few seconds, until its caller's recovery check requeues it (docs/store.md, "Lost wake-ups").
 */
export const PARK_MS = 140_000;
/** Polling fallback (when blocking commands fail): first and longest pause between checks. */
export const POLL_MIN_MS = 250;
export const POLL_MAX_MS = 4_000;
/** After a blocking command failed in transit (an outage, or a proxy cutting long requests), poll this long. */
const BLOCKING_RETRY_MS = 15_000;

export interface PartsConfig {
  url: string;
  token: string;
  prefix?: string;
  options: StoreOptions;
  fetch?: typeof fetch;
  maxBlockMs: number;
  wakeups: WakeupDelivery;
  retryBudgetMs?: number;
  /** Callers wait on a subscription to their job's channel rather than an XREAD per batch (reads.ts). */
  subscribe: boolean;
}

export class UpstashParts {
  readonly rest: UpstashRest;
  readonly scripts: ScriptRunner;
  readonly keys: StoreKeys;
  readonly prefixes: ReturnType<typeof keyPrefixes>;
  readonly opts: StoreOptions;
  readonly maxBlockMs: number;
  readonly wakeup: Wakeup;
  readonly closing = new AbortController();
  /** Batches stored through this instance: local readers take them from here. */
  readonly recent = new RecentBatches();
  /**
   * Until when (performance.now()) waits poll instead of blocking: forever once the service rejected a blocking
   * command, for BLOCKING_RETRY_MS after one failed in transit.
   */
  #pollUntil = 0;
  /** Subscriptions asked for (config) and, until when (performance.now()) they are off: forever once the service
   * refused one, for BLOCKING_RETRY_MS after one failed in transit. */
  readonly #subscribe: boolean;
  #subscribeOffUntil = 0;

  constructor(config: PartsConfig) {
    this.rest = new UpstashRest({
      url: config.url,
      token: config.token,
      fetch: config.fetch,
      retryBudgetMs: config.retryBudgetMs,
    });
    this.scripts = new ScriptRunner(this.rest);
    this.keys = storeKeys(config.prefix);
    this.prefixes = keyPrefixes(this.keys);
    this.opts = config.options;
    this.maxBlockMs = config.maxBlockMs;
    this.wakeup = new Wakeup(config.wakeups);
    this.#subscribe = config.subscribe;
  }

  /** True while callers wait on subscriptions (asked for, and not refused or failing lately). */
  get subscribing(): boolean {
    return this.#subscribe && performance.now() >= this.#subscribeOffUntil;
  }

  /** A subscription could not be opened: the service does not offer it (off for good) or failed in transit. */
  subscribeFailed(err: unknown): void {
    this.#subscribeOffUntil = err instanceof RedisReplyError
      ? Number.POSITIVE_INFINITY
      : performance.now() + BLOCKING_RETRY_MS;
  }

  /** True while blocking commands are off (refused by the service, or failing in transit lately). */
  get polling(): boolean {
    return performance.now() < this.#pollUntil;
  }

  /** `external` combined with the store's own close signal. */
  signal(external?: AbortSignal): AbortSignal {
    return external ? AbortSignal.any([this.closing.signal, external]) : this.closing.signal;
  }

  /**
   * Runs the blocking command `remote` (which must end within about `ms`) as the caller's own wait: Redis ends it as
   * soon as the write it waits for lands, whichever instance wrote it, so an in-process wake-up would save at most a
   * round trip — and on Workers cost a timer per wait, and an aborted fetch whenever it won. `signal` aborts it.
   */
  async block<T>(
    signal: AbortSignal,
    remote: (abort: AbortSignal) => Promise<T | null>,
  ): Promise<BlockOutcome<T>> {
    try {
      const value = await remote(signal);
      return value === null ? { kind: "timeout" } : { kind: "remote", value };
    } catch (err) {
      if (signal.aborted) return { kind: "timeout" };
      if (!(err instanceof RedisReplyError || err instanceof StoreError)) throw err;
      // Refused by the service: poll from now on. Failed in transit: poll for a while. Either way the caller checks
      // again at once with an ordinary (retried) command, which reports a real outage as an error.
      this.#pollUntil = err instanceof RedisReplyError
        ? Number.POSITIVE_INFINITY
        : performance.now() + BLOCKING_RETRY_MS;
      return { kind: "fallback" };
    }
  }
}
