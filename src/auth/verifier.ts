/**
 * Authentication of every request: which role a presented key has. A key is verified with Argon2id once, then
 * recognised by a keyed digest (HMAC-SHA-256, never the key itself) cached in this isolate and, for other
 * isolates and instances, in the store with a TTL. Wrong keys cost bounded CPU and memory: malformed keys and
 * keys of the wrong role are refused before any hashing; a wrong key seen recently is refused from a bounded
 * table of digests; clients with repeated failures are throttled (a bounded table, oldest entries dropped); and
 * Argon2id itself — synchronous WASM that holds the event loop ~100 ms — runs at most a few times a second for the
 * whole instance, so a flood spread over many addresses cannot starve requests whose keys are already known.
 */
import { createHash } from "node:crypto";
import { ApiError } from "../http/errors.ts";
import { HmacSha256 } from "../platform/hmac-sha256.ts";
import type { JobStore } from "../store/store.ts";
import { type Argon2Phc, base64url, type KeyRole, keyRole, verifyKey } from "./keys.ts";

export interface VerifierOptions {
  hashes: Partial<Record<KeyRole, Argon2Phc>>;
  store: JobStore;
  now?: () => number;
  /** How long a verified key is recognised without Argon2id. */
  cacheTtlMs?: number;
  /** Argon2id verifications running at once, and waiting, at most (the rest are refused with a 429). */
  maxConcurrentVerifications?: number;
  maxWaitingVerifications?: number;
  /** Failed verifications per client per minute before that client is refused (429). */
  maxFailuresPerMinute?: number;
  /** Argon2id verifications per second for the whole instance (a token bucket with this burst). */
  maxVerificationsPerSecond?: number;
}

const LOCAL_CACHE_MAX = 1_000;
const NEGATIVE_CACHE_MAX = 10_000;
const CLIENT_TABLE_MAX = 10_000;
const ROLE_NAMES: Record<KeyRole, string> = { admin: "worker (adm_)", api: "API (rtr_)", tools: "tools (tls_)" };

export class KeyVerifier {
  readonly #opts: Required<Omit<VerifierOptions, "hashes" | "store">>;
  readonly #hashes: Partial<Record<KeyRole, Argon2Phc>>;
  readonly #store: JobStore;
  readonly #local = new Map<string, { role: KeyRole; expiresAt: number }>();
  readonly #inFlight = new Map<string, Promise<boolean>>();
  readonly #failures = new Map<string, { count: number; since: number }>();
  /** Digests of keys that failed verification recently (bounded, oldest dropped): a repeated wrong key is cheap. */
  readonly #rejected = new Map<string, number>();
  #budget: number;
  #budgetAt = 0;
  #hmac?: HmacSha256;
  #running = 0;
  readonly #queue: (() => void)[] = [];
  /** Counters for /metrics. */
  readonly stats = { argon2Verifications: 0, failures: 0, throttled: 0, cacheHits: 0 };

  constructor(options: VerifierOptions) {
    this.#hashes = options.hashes;
    this.#store = options.store;
    this.#opts = {
      now: options.now ?? (() => Date.now()),
      cacheTtlMs: options.cacheTtlMs ?? 10 * 60_000,
      maxConcurrentVerifications: options.maxConcurrentVerifications ?? 2,
      maxWaitingVerifications: options.maxWaitingVerifications ?? 16,
      maxFailuresPerMinute: options.maxFailuresPerMinute ?? 10,
      maxVerificationsPerSecond: options.maxVerificationsPerSecond ?? 4,
    };
    this.#budget = this.#opts.maxVerificationsPerSecond;
  }

  /** The presented key from `Authorization: Bearer …` or `x-api-key`. */
  static presentedKey(request: Request): string | undefined {
    const auth = request.headers.get("authorization");
    if (auth?.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
    return request.headers.get("x-api-key")?.trim() || undefined;
  }

  /**
   * Resolves to the key's role if it is valid for one of `allowed`; throws a 401 or 429 ApiError otherwise.
   * `client` may be a function: the address is only needed for keys not already recognised, and reading it costs.
   */
  async authenticate(
    presented: string | undefined,
    allowed: KeyRole[],
    clientOf: string | (() => string),
  ): Promise<KeyRole> {
    if (!presented) throw new ApiError("authentication", "Missing API key: send `Authorization: Bearer <key>`.");
    const role = keyRole(presented);
    if (!role) throw new ApiError("authentication", "Invalid API key.");
    if (!allowed.includes(role)) {
      throw new ApiError(
        "authentication",
        `A ${ROLE_NAMES[role]} key cannot be used here; this endpoint takes a ${
          allowed.map((r) => ROLE_NAMES[r]).join(" or ")
        } key.`,
      );
    }
    const phc = this.#hashes[role];
    if (!phc) {
      throw new ApiError(
        "authentication",
        role === "tools"
          ? "Tools workers are not enabled on this router (AUXOT_TOOLS_KEY_HASH is not set)."
          : "Invalid API key.",
      );
    }
    const now = this.#opts.now();
    const digest = this.#digest(presented);
    const local = this.#local.get(digest);
    if (local && local.expiresAt > now && local.role === role) {
      this.stats.cacheHits++;
      return role;
    }
    const client = typeof clientOf === "string" ? clientOf : clientOf();
    if ((this.#rejected.get(digest) ?? 0) > now) {
      this.#fail(client, now);
      throw new ApiError("authentication", "Invalid API key.");
    }
    this.#throttle(client, now);
    if (await this.#store.getVerifiedKey(digest) === role) {
      this.#remember(digest, role, now);
      return role;
    }
    let pending = this.#inFlight.get(digest);
    if (!pending) {
      pending = this.#verify(presented, phc).finally(() => this.#inFlight.delete(digest));
      this.#inFlight.set(digest, pending);
    }
    if (!await pending) {
      this.#fail(client, now);
      if (this.#rejected.size >= NEGATIVE_CACHE_MAX) this.#rejected.delete(this.#rejected.keys().next().value!);
      this.#rejected.set(digest, now + this.#opts.cacheTtlMs);
      throw new ApiError("authentication", "Invalid API key.");
    }
    this.#remember(digest, role, now);
    await this.#store.putVerifiedKey(digest, role, this.#opts.cacheTtlMs);
    return role;
  }

  #remember(digest: string, role: KeyRole, now: number): void {
    this.#local.delete(digest);
    if (this.#local.size >= LOCAL_CACHE_MAX) this.#local.delete(this.#local.keys().next().value!);
    this.#local.set(digest, { role, expiresAt: now + this.#opts.cacheTtlMs });
  }

  async #verify(key: string, phc: Argon2Phc): Promise<boolean> {
    this.#spendBudget();
    if (this.#running >= this.#opts.maxConcurrentVerifications) {
      if (this.#queue.length >= this.#opts.maxWaitingVerifications) {
        this.stats.throttled++;
        throw new ApiError("rate_limit", "Too many key verifications in progress; retry shortly.", {
          retryAfterSeconds: 1,
        });
      }
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    this.#running++;
    try {
      this.stats.argon2Verifications++;
      return await verifyKey(key, phc);
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  /** Takes one Argon2id verification from the instance-wide budget, or refuses with a 429. */
  #spendBudget(): void {
    const now = this.#opts.now();
    const rate = this.#opts.maxVerificationsPerSecond;
    this.#budget = Math.min(rate, this.#budget + (now - this.#budgetAt) * rate / 1000);
    this.#budgetAt = now;
    if (this.#budget < 1) {
      this.stats.throttled++;
      throw new ApiError("rate_limit", "Too many new keys to verify right now; retry shortly.", {
        retryAfterSeconds: 1,
      });
    }
    this.#budget--;
  }

  #throttle(client: string, now: number): void {
    const entry = this.#failures.get(client);
    if (!entry) return;
    if (now - entry.since > 60_000) {
      this.#failures.delete(client);
      return;
    }
    if (entry.count >= this.#opts.maxFailuresPerMinute) {
      this.stats.throttled++;
      const retryAfterSeconds = Math.max(1, Math.ceil((entry.since + 60_000 - now) / 1000));
      throw new ApiError("rate_limit", "Too many failed authentication attempts; retry later.", { retryAfterSeconds });
    }
  }

  #fail(client: string, now: number): void {
    this.stats.failures++;
    const entry = this.#failures.get(client);
    if (entry && now - entry.since <= 60_000) {
      entry.count++;
      return;
    }
    this.#failures.delete(client);
    if (this.#failures.size >= CLIENT_TABLE_MAX) this.#failures.delete(this.#failures.keys().next().value!);
    this.#failures.set(client, { count: 1, since: now });
  }

  /**
   * HMAC-SHA-256 of the key under a secret derived from the configured hashes (rotating a key changes it). Runs on
   * every request, so it is synchronous and allocation-light (src/platform/hmac-sha256.ts): WebCrypto's `sign` is
   * an async op on another thread, and node:crypto's Hmac costs more than the rest of the auth. Same bytes as ever.
   */
  #digest(key: string): string {
    this.#hmac ??= new HmacSha256(
      createHash("sha256").update(
        `auxot-key-cache-v1|${
          Object.entries(this.#hashes).map(([r, h]) => `${r}:${base64url(h!.salt)}:${base64url(h!.hash)}`).join("|")
        }`,
      ).digest(),
    );
    return this.#hmac.digestBase64url(key);
  }
}
