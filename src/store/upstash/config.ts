/**
 * The Upstash store's configuration (`UpstashStoreConfig`) and its connection settings. `AUXOT_REDIS_URL` (or Upstash's own `UPSTASH_REDIS_REST_URL`) is the
 * database's REST URL; the token comes from the URL itself (`https://:TOKEN@host`, `https://default:TOKEN@host`,
 * or `?token=`), else `AUXOT_REDIS_TOKEN`, else `UPSTASH_REDIS_REST_TOKEN`. Errors name the variable to fix and
 * never repeat the token.
 */
import type { StoreOptions } from "../store.ts";
import type { WakeupDelivery } from "../wakeup.ts";

export interface UpstashStoreConfig {
  /** The Upstash REST URL (see parseRedisUrl below). */
  url: string;
  token: string;
  /** Key prefix (default "auxot"); keys are `<prefix>:v1:...`. */
  prefix?: string;
  options?: Partial<StoreOptions>;
  fetch?: typeof fetch;
  /** Longest single blocking command in ms (default 60 s). */
  maxBlockMs?: number;
  /**
   * Same-instance wake-ups (src/store/wakeup.ts): "direct" (the default; Deno) or "off" (Workers, where no request
   * may settle another's promise, and tests: every wait then ends by its own blocking command or timer).
   */
  wakeups?: WakeupDelivery;
  /**
   * The router's sweeps (`reap`, called on traffic) skip while this instance swept less than SWEEP_INTERVAL_MS ago
   * or its last sweep found nothing live and it has seen no job since. Off by default: tests call reap to sweep.
   */
  lazySweeps?: boolean;
  /** How long each step is retried through an outage (default 8 s: outages up to 5 s fail no request). */
  retryBudgetMs?: number;
  /**
   * Callers that name themselves (readEvents' `reader`) wait on a subscription to their job's channel: one SUBSCRIBE
   * per answer instead of an XREAD per batch (reads.ts). Default off; Workers turn it on (there no batch reaches a
   * caller through memory). Falls back to XREAD where the service does not offer pub/sub over REST.
   */
  subscribe?: boolean;
}

export interface UpstashConnection {
  /** The REST URL without credentials. */
  url: string;
  token: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * `url` is AUXOT_REDIS_URL's value. Returns null when neither it nor UPSTASH_REDIS_REST_URL is set (the router
 * then uses its embedded store); throws an Error naming the variable when the setting cannot work.
 */
export function parseRedisUrl(url: string | undefined, env: Env): UpstashConnection | null {
  const fromAuxot = url?.trim() ? url.trim() : undefined;
  const variable = fromAuxot ? "AUXOT_REDIS_URL" : "UPSTASH_REDIS_REST_URL";
  const raw = fromAuxot ?? (env.UPSTASH_REDIS_REST_URL?.trim() || undefined);
  if (!raw) return null;

  if (/^rediss?:\/\//i.test(raw)) {
    throw new Error(
      `${variable} is a redis:// URL, but Auxot talks to Redis over Upstash's REST API (HTTPS), which works on ` +
        `Deno and Cloudflare Workers alike. Use the database's REST URL (Upstash console → your database → REST API: ` +
        `UPSTASH_REDIS_REST_URL, like https://your-db.upstash.io) and its token (UPSTASH_REDIS_REST_TOKEN) in ` +
        `AUXOT_REDIS_TOKEN.`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new Error(`${variable} is not a valid URL; expected the Upstash REST URL, like https://your-db.upstash.io`);
  }
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname);
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && loopback)) {
    throw new Error(
      `${variable} must be an https:// Upstash REST URL (plain http is accepted for localhost only), ` +
        `got a ${parsed.protocol} URL`,
    );
  }

  const password = decodeURIComponent(parsed.password);
  const username = decodeURIComponent(parsed.username);
  const inUrl = password || (username && username !== "default" ? username : "") ||
    parsed.searchParams.get("token") || parsed.searchParams.get("_token") || "";
  const token = inUrl || env.AUXOT_REDIS_TOKEN?.trim() || env.UPSTASH_REDIS_REST_TOKEN?.trim() || "";
  if (!token) {
    throw new Error(
      `${variable} is set but no Upstash token was found: set AUXOT_REDIS_TOKEN (the database's ` +
        `UPSTASH_REDIS_REST_TOKEN), or put it in the URL as https://default:TOKEN@host`,
    );
  }

  parsed.username = "";
  parsed.password = "";
  parsed.searchParams.delete("token");
  parsed.searchParams.delete("_token");
  const clean = parsed.toString().replace(/\/+$/, "");
  return { url: clean, token };
}
