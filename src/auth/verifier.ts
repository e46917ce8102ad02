/**
 * Authentication of every request: which role a presented key has. There is one configured Argon2id hash per role,
 * so there is one valid key per role. Once that key has been verified (Argon2id, once per deployment), its keyed
 * digest (HMAC under the router secret, never the key) is kept in this isolate and in the store, for as long as the
 * configured hashes are unchanged. From then on every key of that role is decided by comparing digests in constant
 * time: the valid key is accepted and any other key refused, with no Argon2id and no throttle in the way — a wrong key
 * costs one HMAC and blocks no one. Once the valid key has been presented, this isolate compares later keys with it
 * directly (constant time, no HMAC): the key never leaves the isolate's memory.
 *
 * Before the first verification of a role, Argon2id is unavoidable; src/auth/argon-gate.ts rations it and orders the
 * keys waiting for it so that a flood only delays the addresses it comes from. Wrong keys seen recently are refused
 * from a bounded table. No request waits on another request's verification promise (the workerd rule): a request
 * whose key is being verified by another request re-checks on its own timer and runs Argon2id itself if it must.
 */
import { ApiError } from "../http/errors.ts";
import type { JobStore } from "../store/store.ts";
import { ArgonGate } from "./argon-gate.ts";
import { type Argon2Phc, type KeyRole, keyRole, verifyKey } from "./keys.ts";
import { LeaseTokens } from "./lease-token.ts";
import { constantTimeEqual, deriveRouterKey, type RouterKey } from "./router-secret.ts";

export interface VerifierOptions {
  hashes: Partial<Record<KeyRole, Argon2Phc>>;
  store: JobStore;
  now?: () => number;
  /** Argon2id verifications per second for the whole instance (only before a role's key is known). */
  maxVerificationsPerSecond?: number;
  maxConcurrentVerifications?: number;
  /** Keys waiting for Argon2id, in all and per client; and how long one may wait (then 429). */
  maxWaitingVerifications?: number;
  maxWaitingPerClient?: number;
  maxVerificationWaitMs?: number;
  /** Called for each Argon2id verification run (for /metrics). */
  onArgon2?: () => void;
  /** See GateOptions.crossRequestWakeups (false under workerd). */
  crossRequestWakeups?: boolean;
}

/** How long the store keeps a role's verified digest: "as long as the hashes are unchanged" (a new hash, a new name). */
const KNOWN_DIGEST_TTL_MS = 400 * 24 * 3_600_000;
/** While a role's key is unknown, the store is asked again at most this often per isolate (each ask is a command). */
const STORE_RECHECK_MS = 1_000;
const REJECTED_MAX = 10_000;
const REJECTED_TTL_MS = 10 * 60_000;
const CLIENT_TABLE_MAX = 10_000;
const FAILURE_WINDOW_MS = 60_000;
const ROLE_NAMES: Record<KeyRole, string> = { admin: "worker (adm_)", api: "API (rtr_)", tools: "tools (tls_)" };

export class KeyVerifier {
  readonly #hashes: Partial<Record<KeyRole, Argon2Phc>>;
  readonly #store: JobStore;
  readonly #now: () => number;
  readonly #gate: ArgonGate;
  readonly #onArgon2: () => void;
  /** The digest of each role's valid key, once verified (here or, through the store, anywhere in the deployment). */
  readonly #known: Partial<Record<KeyRole, string>> = {};
  /**
   * Each role's valid key itself, once a request presenting it matched the digest: later requests are decided by a
   * constant-time comparison with it and need no HMAC (three per job otherwise). It stays in this isolate's memory
   * only, as every request's key does while it is served; it is never logged, stored or used as a map key.
   */
  readonly #accepted: Partial<Record<KeyRole, string>> = {};
  readonly #storeAskedAt: Partial<Record<KeyRole, number>> = {};
  /** Digests of keys that failed Argon2id recently (bounded, oldest dropped): a repeated wrong key costs nothing. */
  readonly #rejected = new Map<string, number>();
  /** Recent failures per client: clients that fail wait behind clients that do not. */
  readonly #failures = new Map<string, { count: number; since: number }>();
  #digestKey?: RouterKey;
  #storeNames?: Record<KeyRole, string>;
  /** Lease tokens of this deployment (same secret family as the digests). */
  readonly leases: LeaseTokens;
  /** Counters for /metrics and tests. */
  readonly stats = { argon2Verifications: 0, failures: 0, throttled: 0, cacheHits: 0 };

  constructor(options: VerifierOptions) {
    this.#hashes = options.hashes;
    this.#store = options.store;
    this.#now = options.now ?? (() => Date.now());
    this.leases = new LeaseTokens(options.hashes);
    this.#onArgon2 = options.onArgon2 ?? (() => {});
    this.#gate = new ArgonGate({
      now: this.#now,
      ratePerSecond: options.maxVerificationsPerSecond ?? 4,
      maxConcurrent: options.maxConcurrentVerifications ?? 2,
      maxWaiting: options.maxWaitingVerifications ?? 64,
      maxWaitingPerClient: options.maxWaitingPerClient ?? 8,
      maxWaitMs: options.maxVerificationWaitMs ?? 10_000,
      crossRequestWakeups: options.crossRequestWakeups,
    });
  }

  /** The presented key from `Authorization: Bearer …` or `x-api-key`. */
  static presentedKey(request: Request): string | undefined {
    const auth = request.headers.get("authorization");
    if (auth?.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
    return request.headers.get("x-api-key")?.trim() || undefined;
  }

  /** Resolves to the key's role if it is valid for one of `allowed`; throws a 401 (or, rarely, 429) ApiError. */
  async authenticate(presented: string | undefined, allowed: KeyRole[], client: string): Promise<KeyRole> {
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
    const accepted = this.#accepted[role];
    if (accepted !== undefined && constantTimeEqual(presented, accepted)) {
      this.stats.cacheHits++;
      return role;
    }
    const digest = this.#digest(presented);
    const known = this.#known[role] ?? await this.#knownFromStore(role);
    if (known !== undefined) return this.#compare(digest, known, role, client, presented);
    if (this.#isRejected(digest)) throw this.#fail(client);

    const outcome = await this.#gate.acquire<string | null>(client, role, digest, () => this.#hasFailed(client), () => {
      const nowKnown = this.#known[role];
      if (nowKnown !== undefined) return { done: nowKnown };
      if (this.#isRejected(digest)) return { done: null };
      return undefined;
    }).catch((err) => {
      this.stats.throttled++;
      throw err;
    });
    if (!outcome.turn) {
      if (outcome.done === null) throw this.#fail(client);
      return this.#compare(digest, outcome.done, role, client, presented);
    }
    let valid: boolean;
    try {
      this.stats.argon2Verifications++;
      this.#onArgon2();
      valid = await verifyKey(presented, phc);
    } finally {
      this.#gate.release(digest);
    }
    if (!valid) {
      if (this.#rejected.size >= REJECTED_MAX) this.#rejected.delete(this.#rejected.keys().next().value!);
      this.#rejected.set(digest, this.#now() + REJECTED_TTL_MS);
      throw this.#fail(client);
    }
    this.#known[role] = digest;
    this.#accepted[role] = presented;
    try {
      await this.#store.putVerifiedKey(this.#names()[role], digest, KNOWN_DIGEST_TTL_MS);
    } catch {
      // The store is only a cache here: other isolates will verify once themselves.
    }
    return role;
  }

  #compare(digest: string, known: string, role: KeyRole, client: string, presented: string): KeyRole {
    if (constantTimeEqual(digest, known)) {
      this.stats.cacheHits++;
      this.#accepted[role] = presented;
      return role;
    }
    throw this.#fail(client);
  }

  async #knownFromStore(role: KeyRole): Promise<string | undefined> {
    const now = this.#now();
    if (now - (this.#storeAskedAt[role] ?? -Infinity) < STORE_RECHECK_MS) return undefined;
    this.#storeAskedAt[role] = now;
    let value: string | null = null;
    try {
      value = await this.#store.getVerifiedKey(this.#names()[role]);
    } catch {
      return undefined; // the store unreachable: verify here (the request itself will meet the outage soon enough)
    }
    if (value && /^[A-Za-z0-9_-]{43}$/.test(value)) this.#known[role] ??= value;
    return this.#known[role];
  }

  #isRejected(digest: string): boolean {
    const until = this.#rejected.get(digest);
    return until !== undefined && until > this.#now();
  }

  /** A client has failed recently if its address, or its network (/24, /64), has: floods rarely come from one host. */
  #hasFailed(client: string): boolean {
    const now = this.#now();
    return [client, addressGroup(client)].some((name) => {
      const entry = this.#failures.get(name);
      return entry !== undefined && now - entry.since <= FAILURE_WINDOW_MS;
    });
  }

  #fail(client: string): ApiError {
    this.stats.failures++;
    const now = this.#now();
    for (const name of new Set([client, addressGroup(client)])) {
      const entry = this.#failures.get(name);
      if (entry && now - entry.since <= FAILURE_WINDOW_MS) entry.count++;
      else {
        this.#failures.delete(name);
        if (this.#failures.size >= CLIENT_TABLE_MAX) this.#failures.delete(this.#failures.keys().next().value!);
        this.#failures.set(name, { count: 1, since: now });
      }
    }
    return new ApiError("authentication", "Invalid API key.");
  }

  /**
   * HMAC-SHA-256 of the key under the router secret (src/auth/router-secret.ts): rotating any key changes it. The key
   * is derived on first use, synchronously: no request ever awaits a promise of it that another request created.
   */
  #digest(key: string): string {
    this.#digestKey ??= deriveRouterKey(this.#hashes, "key-digest");
    return this.#digestKey.digestBase64url(key);
  }

  /** Store names of the verified digests: they depend on the secret, so new hashes never meet an old entry. */
  #names(): Record<KeyRole, string> {
    if (!this.#storeNames) {
      const fingerprint = this.#digest("store-name").slice(0, 16);
      this.#storeNames = {
        admin: `known.${fingerprint}.admin`,
        api: `known.${fingerprint}.api`,
        tools: `known.${fingerprint}.tools`,
      };
    }
    return this.#storeNames;
  }
}

/** The network an address belongs to, for failure tracking: its /24 (IPv4) or /64 (IPv6), else the address itself. */
export function addressGroup(address: string): string {
  const v4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$/.exec(address);
  if (v4) return `${v4[1]}.0/24`;
  if (address.includes(":") && !address.includes("::")) return `${address.split(":").slice(0, 4).join(":")}::/64`;
  return address;
}
