/**
 * Keys and their Argon2id hashes. A key is a role prefix and 256 random bits, base64url: `adm_…` (GPU and CLI
 * workers), `rtr_…` (API callers), `tls_…` (tools workers). The router only ever holds PHC-encoded Argon2id
 * hashes (hash-wasm: the same WASM on Deno and Workers) and compares digests in constant time.
 */
import { argon2id } from "hash-wasm";

export type KeyRole = "admin" | "api" | "tools";

export const KEY_PREFIX: Record<KeyRole, string> = { admin: "adm", api: "rtr", tools: "tls" };

/** OWASP's Argon2id baseline (19 MiB, 2 passes): ~100 ms in WASM, verified once per key per cache TTL. */
export const ARGON2_PARAMS = { memorySize: 19_456, iterations: 2, parallelism: 1, hashLength: 32 } as const;

const KEY_PATTERN = /^(adm|rtr|tls)_[A-Za-z0-9_-]{43}$/;

export function generateKey(role: KeyRole): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `${KEY_PREFIX[role]}_${base64url(bytes)}`;
}

/** The role a well-formed key claims by its prefix, or undefined for anything that is not a key. */
export function keyRole(key: string): KeyRole | undefined {
  if (!KEY_PATTERN.test(key)) return undefined;
  const prefix = key.slice(0, 3);
  return (Object.keys(KEY_PREFIX) as KeyRole[]).find((role) => KEY_PREFIX[role] === prefix);
}

export async function hashKey(key: string): Promise<string> {
  return await argon2id({
    password: key,
    salt: crypto.getRandomValues(new Uint8Array(16)),
    ...ARGON2_PARAMS,
    outputType: "encoded",
  });
}

export interface Argon2Phc {
  memorySize: number;
  iterations: number;
  parallelism: number;
  salt: Uint8Array;
  hash: Uint8Array;
}

/** Parses `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (parameters in any order, unpadded base64). */
export function parsePhc(phc: string): Argon2Phc | undefined {
  const parts = phc.trim().split("$");
  if (parts.length !== 6 || parts[0] !== "" || parts[1] !== "argon2id" || parts[2] !== "v=19") return undefined;
  const params = new Map<string, number>();
  for (const pair of parts[3].split(",")) {
    const [name, value] = pair.split("=");
    if (!/^\d+$/.test(value ?? "")) return undefined;
    params.set(name, Number(value));
  }
  const m = params.get("m"), t = params.get("t"), p = params.get("p");
  if (params.size !== 3 || !m || !t || !p) return undefined;
  const salt = decodeBase64(parts[4]), hash = decodeBase64(parts[5]);
  if (!salt || !hash || salt.length < 8 || hash.length < 16) return undefined;
  return { memorySize: m, iterations: t, parallelism: p, salt, hash };
}

/** Full Argon2id verification (~100 ms): recomputes the hash and compares in constant time. */
export async function verifyKey(key: string, phc: Argon2Phc): Promise<boolean> {
  const computed = await argon2id({
    password: key,
    salt: phc.salt,
    memorySize: phc.memorySize,
    iterations: phc.iterations,
    parallelism: phc.parallelism,
    hashLength: phc.hash.length,
    outputType: "binary",
  });
  return timingSafeEqual(computed, phc.hash);
}

export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i % a.length] ?? 0) ^ (b[i % b.length] ?? 0);
  return diff === 0;
}

const BASE64URL_CODES = Array.from(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
  (c) => c.charCodeAt(0),
);
/** Character codes of the output, reused: one string is all a call allocates. */
const codes: number[] = [];

/**
 * Base64url without padding. Hand-rolled: it runs for every MAC the router computes (a lease token per job), and the
 * btoa route (a binary string, btoa, two replaceAll and a regex) allocated five strings per call.
 */
export function base64url(bytes: Uint8Array): string {
  const A = BASE64URL_CODES;
  const whole = bytes.length - bytes.length % 3;
  let n = 0, i = 0;
  codes.length = Math.ceil(bytes.length * 4 / 3);
  for (; i < whole; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    codes[n++] = A[v >>> 18];
    codes[n++] = A[(v >>> 12) & 63];
    codes[n++] = A[(v >>> 6) & 63];
    codes[n++] = A[v & 63];
  }
  if (bytes.length - whole > 0) {
    const v = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8);
    codes[n++] = A[v >>> 18];
    codes[n++] = A[(v >>> 12) & 63];
    if (bytes.length - whole === 2) codes[n++] = A[(v >>> 6) & 63];
  }
  // In slices: an argument list has a limit (large inputs are rare: keys and MACs are 32 bytes).
  let out = "";
  for (let from = 0; from < n; from += 8_192) {
    out += String.fromCharCode.apply(null, from === 0 && n <= 8_192 ? codes : codes.slice(from, from + 8_192));
  }
  return out;
}

function decodeBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]+$/.test(text)) return undefined;
  try {
    const padded = text + "=".repeat((4 - text.length % 4) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}
