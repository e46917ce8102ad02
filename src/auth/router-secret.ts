/**
 * The router's own secret, for keyed digests of presented keys and for lease tokens. It is derived from the configured
 * Argon2id hashes (their salts and outputs), so every isolate and instance of one deployment derives the same secret
 * with no extra configuration and no coordination, and rotating any key changes it.
 *
 * Why it is secret: the hashes live only in the router's configuration (environment, `.env` at 0600, Fly or Workers
 * secrets). They are never sent to callers or workers, never written to the store, never logged (`describeConfig`
 * leaves them out). A key alone does not give them: recomputing a hash needs its random salt, which is in the
 * configuration too. So a caller, a worker, or someone who can read the store cannot compute a digest or mint a lease
 * token; only a party that reads the router's configuration can (and that party holds the router anyway).
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { type Argon2Phc, base64url, type KeyRole } from "./keys.ts";

const encoder = new TextEncoder();

/**
 * An HMAC-SHA-256 key for one purpose (`label`). Synchronous (@noble/hashes, audited pure JavaScript, the same on
 * Deno and Workers): these MACs run several times per job (the key digest on every request, the lease token on every
 * claim and worker post), and WebCrypto's `sign` is an async op on another thread — a round trip each time for a
 * microsecond of hashing. The key's inner and outer pads are absorbed once; each MAC continues a copy of that state.
 */
export interface RouterKey {
  /** The MAC of `text` (UTF-8), base64url without padding. */
  digestBase64url(text: string): string;
}

function routerKey(secret: Uint8Array): RouterKey {
  const keyed = hmac.create(sha256, secret);
  // One scratch state and one output buffer, reused: `clone()` and `digest()` allocated two hash states and their
  // buffers per MAC (~5 KB). `_cloneInto` is @noble/hashes' own way of copying a state into an existing one.
  const scratch = keyed.clone();
  const out = new Uint8Array(scratch.outputLen);
  return {
    digestBase64url: (text) => {
      keyed._cloneInto(scratch).update(encoder.encode(text)).digestInto(out);
      return base64url(out);
    },
  };
}

/**
 * The key for `label`, derived from the configured hashes. Synchronous, so no promise of it is ever shared between
 * requests (under workerd a request must not await a promise another request created: docs/store.md).
 */
export function deriveRouterKey(hashes: Partial<Record<KeyRole, Argon2Phc>>, label: string): RouterKey {
  const material = (Object.keys(hashes) as KeyRole[]).sort()
    .map((role) => `${role}:${base64url(hashes[role]!.salt)}:${base64url(hashes[role]!.hash)}`)
    .join("|");
  return routerKey(sha256(encoder.encode(`auxot-router-secret-v1|${label}|${material}`)));
}

/** The MAC of `text`, base64url without padding (the same bytes WebCrypto's HMAC gives). */
// deno-lint-ignore require-await
export async function hmacBase64url(key: RouterKey, text: string): Promise<string> {
  return key.digestBase64url(text);
}

/** Constant-time equality of two strings (digests, tokens): the time does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    diff |= (a.charCodeAt(i % (a.length || 1)) || 0) ^ (b.charCodeAt(i % (b.length || 1)) || 0);
  }
  return diff === 0;
}
