/**
 * A minimal client for Upstash's Redis REST protocol (`POST /` with a JSON command array → `{"result": ...}`),
 * written for the store rather than using `@upstash/redis` so that the store controls what matters to it: every
 * command is counted (each is billed), HTTP timeouts are set per call (a blocking command needs one longer than its
 * own timeout), an abort really aborts, and only steps the caller declares safe to repeat are retried.
 *
 * Retries: a step sent with `retry: true` that fails in transit (unreachable, timed out, HTTP 5xx) is sent again
 * with growing pauses for up to RETRY_BUDGET_MS, so an outage of a few seconds costs no request. Every script the
 * store sends is written to be repeated safely (a reply lost after the step ran must not enqueue twice, lose a claim
 * or append twice: each script recognises its own earlier run by an idempotency token or sequence number). Blocking
 * commands are not retried here: their callers wait in loops that fall back to polling.
 *
 * Responses are requested without `Upstash-Encoding: base64`: everything the store writes is UTF-8 JSON text.
 * Failures: Redis error replies become `RedisReplyError` (the caller decides, e.g. NOSCRIPT → EVAL); an unreachable
 * or refusing service becomes `StoreError("unavailable")`. Messages never contain the token.
 */
import { StoreError } from "../store.ts";

export type RedisValue = string | number | null | RedisValue[];

/** Redis answered the command with an error reply (HTTP 400 from Upstash). */
export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
  }
}

export interface UpstashRestOptions {
  url: string;
  token: string;
  fetch?: typeof fetch;
  /** How long repeatable steps are retried through an outage (default RETRY_BUDGET_MS). */
  retryBudgetMs?: number;
}

export interface CommandOptions {
  signal?: AbortSignal;
  /** HTTP timeout; defaults to DEFAULT_TIMEOUT_MS. Blocking commands pass their block time plus a margin. */
  timeoutMs?: number;
  /** The step is safe to repeat: retry it through a short outage (see the module comment). */
  retry?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** How long a repeatable step keeps being retried through an outage (outages up to 5 s must fail no request). */
export const RETRY_BUDGET_MS = 8_000;
const RETRY_FIRST_PAUSE_MS = 100;
const RETRY_MAX_PAUSE_MS = 1_000;

/** Failures worth another try: the service was not reached or answered 5xx; never a refused token. */
class TransientError extends StoreError {}

export class UpstashRest {
  readonly #url: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;
  #commands = 0;
  #retries = 0;
  readonly #retryBudgetMs: number;

  constructor(options: UpstashRestOptions) {
    this.#url = options.url.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#retryBudgetMs = options.retryBudgetMs ?? RETRY_BUDGET_MS;
  }

  /** Commands sent so far (whether or not they succeeded: a command that reached the service is billed). */
  get commandCount(): number {
    return this.#commands;
  }

  async command(args: (string | number)[], options: CommandOptions = {}): Promise<RedisValue> {
    if (!options.retry) return await this.#once(args, options);
    const giveUpAt = performance.now() + this.#retryBudgetMs;
    for (let pause = RETRY_FIRST_PAUSE_MS;; pause = Math.min(pause * 2, RETRY_MAX_PAUSE_MS)) {
      try {
        return await this.#once(args, options);
      } catch (err) {
        if (!(err instanceof TransientError) || options.signal?.aborted) throw err;
        const left = giveUpAt - performance.now();
        if (left <= 0) throw err;
        this.#retries++;
        await sleep(Math.min(pause, left), options.signal);
      }
    }
  }

  /**
   * SUBSCRIBE to one channel over Upstash's Server-Sent Events endpoint (`POST /subscribe/<channel>`, as
   * `@upstash/redis`'s `subscribe`): the open response, whose body carries `data: subscribe,<channel>,1` and then
   * `data: message,<channel>,<payload>` lines until `signal` aborts or the service ends it. One billed command.
   * Sent once more at once when the request fails in transit (a pooled connection the service had closed: under
   * workerd, "Network connection lost" once in a few hundred subscriptions here); a second failure is the caller's
   * to handle (it reads by XREAD). A service that answers anything but an event stream raises `RedisReplyError` (it
   * does not offer this); an unreachable one `StoreError("unavailable")`.
   */
  async subscribe(channel: string, signal: AbortSignal): Promise<Response> {
    let res: Response;
    for (let attempt = 1;; attempt++) {
      this.#commands++;
      try {
        res = await this.#fetch(`${this.#url}/subscribe/${encodeURIComponent(channel)}`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.#token}`, accept: "text/event-stream" },
          signal,
        });
        break;
      } catch (err) {
        if (signal.aborted) throw signal.reason ?? err;
        if (attempt >= 2) {
          throw new TransientError(
            "unavailable",
            `Upstash Redis is unreachable (SUBSCRIBE: ${(err as Error).message})`,
          );
        }
        this.#retries++;
      }
    }
    if (res.ok && (res.headers.get("content-type") ?? "").startsWith("text/event-stream") && res.body) return res;
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      throw new StoreError(
        "unavailable",
        `Upstash Redis refused the token (HTTP ${res.status}): check AUXOT_REDIS_TOKEN`,
      );
    }
    if (res.status >= 500) throw new TransientError("unavailable", `Upstash Redis answered HTTP ${res.status}`);
    throw new RedisReplyError(`SUBSCRIBE over REST is not offered (HTTP ${res.status})`);
  }

  /** Steps sent again after a transient failure (for tests and metrics). */
  get retryCount(): number {
    return this.#retries;
  }

  async #once(args: (string | number)[], options: CommandOptions): Promise<RedisValue> {
    // One controller, aborted by the HTTP timeout or the caller's signal, and the timer cleared once the answer is
    // in: not AbortSignal.timeout, whose timer cannot be cancelled. On Workers each such timer fired seconds after
    // its command (the request's context lives on for its metric flush), waking the isolate for nothing — one of
    // the larger CPU costs of a streamed answer, which sends a command per batch.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const external = options.signal;
    const forward = () => controller.abort(external?.reason);
    if (external?.aborted) forward();
    else external?.addEventListener("abort", forward);
    this.#commands++;
    let res: Response;
    let body: unknown;
    try {
      try {
        res = await this.#fetch(`${this.#url}/`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
          body: JSON.stringify(args),
          signal: controller.signal,
        });
      } catch (err) {
        if (external?.aborted) throw external.reason ?? err;
        const why = timedOut ? "timed out" : (err as Error).message;
        throw new TransientError("unavailable", `Upstash Redis is unreachable (${String(args[0])}: ${why})`);
      }
      try {
        body = await res.json();
      } catch (err) {
        if (external?.aborted) throw external.reason ?? err;
        throw new TransientError("unavailable", `Upstash Redis sent an unreadable answer (HTTP ${res.status})`);
      }
    } finally {
      clearTimeout(timer);
      external?.removeEventListener("abort", forward);
    }
    const error = isRecord(body) && typeof body.error === "string" ? body.error : undefined;
    if (res.status === 400 && error !== undefined) throw new RedisReplyError(error);
    if (res.status === 401 || res.status === 403) {
      throw new StoreError(
        "unavailable",
        `Upstash Redis refused the token (HTTP ${res.status}): check AUXOT_REDIS_TOKEN`,
      );
    }
    if (!res.ok || !isRecord(body) || !("result" in body) || !isRedisValue(body.result)) {
      const Failure = res.status >= 500 ? TransientError : StoreError;
      throw new Failure("unavailable", `Upstash Redis answered HTTP ${res.status}${error ? `: ${error}` : ""}`);
    }
    return body.result;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller then sees the signal and stops). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isRedisValue(value: unknown): value is RedisValue {
  if (value === null || typeof value === "string" || typeof value === "number") return true;
  return Array.isArray(value) && value.every(isRedisValue);
}
