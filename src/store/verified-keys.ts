/**
 * The embedded store's verified-key cache: a keyed digest of a key (never the key) → its role, until it expires.
 * Bounded whatever callers send: past MAX_VERIFIED_KEYS the oldest entry goes first.
 */

/** Verified keys cached at most (oldest evicted first). */
const MAX_VERIFIED_KEYS = 10_000;

export class VerifiedKeys {
  readonly #entries = new Map<string, { role: string; expiresAt: number }>();

  get(digest: string, now: number): string | null {
    const cached = this.#entries.get(digest);
    return cached && cached.expiresAt > now ? cached.role : null;
  }

  put(digest: string, role: string, expiresAt: number): void {
    // Re-inserted, so that insertion order stays age order for the eviction below.
    this.#entries.delete(digest);
    if (this.#entries.size >= MAX_VERIFIED_KEYS) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(digest, { role, expiresAt });
  }

  /** Drops the expired entries (the store's sweep). */
  sweep(now: number): void {
    for (const [digest, cached] of this.#entries) {
      if (cached.expiresAt <= now) this.#entries.delete(digest);
    }
  }
}
