/**
 * A minimal client for Upstash's Redis REST protocol (`POST /` with a JSON command array → `{"result": ...}`),
 * written for the store rather than using `@upstash/redis` so that the store controls what matters to it: every
 * command is counted (each is billed), HTTP timeouts are set per call (a blocking command needs one longer than its
 * own timeout), an abort really aborts, and nothing is retried behind its back (a retried script could run twice).
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
}

export interface CommandOptions {
  signal?: AbortSignal;
  /** HTTP timeout; defaults to DEFAULT_TIMEOUT_MS. Blocking commands pass their block time plus a margin. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export class UpstashRest {
  readonly #url: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;
  #commands = 0;

  constructor(options: UpstashRestOptions) {
    this.#url = options.url.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Commands sent so far (whether or not they succeeded: a command that reached the service is billed). */
  get commandCount(): number {
    return this.#commands;
  }

  async command(args: (string | number)[], options: CommandOptions = {}): Promise<RedisValue> {
    const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    this.#commands++;
    let res: Response;
    try {
      res = await this.#fetch(`${this.#url}/`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
        body: JSON.stringify(args),
        signal,
      });
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      const why = timeout.aborted ? "timed out" : (err as Error).message;
      throw new StoreError("unavailable", `Upstash Redis is unreachable (${String(args[0])}: ${why})`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      throw new StoreError("unavailable", `Upstash Redis sent an unreadable answer (HTTP ${res.status})`);
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
      throw new StoreError("unavailable", `Upstash Redis answered HTTP ${res.status}${error ? `: ${error}` : ""}`);
    }
    return body.result;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isRedisValue(value: unknown): value is RedisValue {
  if (value === null || typeof value === "string" || typeof value === "number") return true;
  return Array.isArray(value) && value.every(isRedisValue);
}
