/**
 * HMAC-SHA-256 (RFC 2104, FIPS 180-4) under one fixed key, synchronous, for the per-request key digest
 * (src/auth/verifier.ts). Why not a library call: WebCrypto's `sign` is an async op run on another thread (a
 * round trip of ~0.1 ms on every request) and Deno's node:crypto Hmac builds Node stream and Buffer objects on
 * each call (~10 µs of CPU, ~2 KB of garbage); the router's own measurements (bench/router-cpu.ts) put either at a
 * third of its CPU per request. With the key's inner and outer pad blocks compressed once, a short message costs
 * two compressions and allocates only the answer. Checked against node:crypto in
 * tests/platform/hmac-sha256.test.ts.
 */

const K = new Uint32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
const IV = new Uint32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Work space shared by every call (single-threaded, no await inside a computation). */
const W = new Uint32Array(64);
const encoder = new TextEncoder();

/** One SHA-256 compression of the 64-byte block at `offset` into `state`. */
function compress(state: Uint32Array, block: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    W[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15], w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

/** Padding blocks, reused (single-threaded, no await inside a computation). */
const TAIL = new Uint8Array(128);
const TAIL_VIEW = new DataView(TAIL.buffer);

/** Finishes a hash whose state already covers `prefixBytes` bytes: compresses `data` with its padding. */
function finish(state: Uint32Array, data: Uint8Array, length: number, prefixBytes: number): void {
  let offset = 0;
  for (; offset + 64 <= length; offset += 64) compress(state, data, offset);
  const rest = length - offset;
  const tailLength = rest + 9 <= 64 ? 64 : 128;
  TAIL.fill(0, 0, tailLength);
  for (let i = 0; i < rest; i++) TAIL[i] = data[offset + i];
  TAIL[rest] = 0x80;
  const bits = (prefixBytes + length) * 8;
  TAIL_VIEW.setUint32(tailLength - 8, Math.floor(bits / 0x1_0000_0000));
  TAIL_VIEW.setUint32(tailLength - 4, bits >>> 0);
  compress(state, TAIL, 0);
  if (tailLength === 128) compress(state, TAIL, 64);
}

export class HmacSha256 {
  readonly #inner = new Uint32Array(8);
  readonly #outer = new Uint32Array(8);
  readonly #state = new Uint32Array(8);
  #buffer = new Uint8Array(256);

  /** `key` of at most 64 bytes (the router's is a 32-byte SHA-256). */
  constructor(key: Uint8Array) {
    if (key.length > 64) throw new RangeError("HmacSha256: keys longer than 64 bytes are not supported");
    const pad = new Uint8Array(64);
    for (const [state, byte] of [[this.#inner, 0x36], [this.#outer, 0x5c]] as const) {
      pad.fill(byte);
      for (let i = 0; i < key.length; i++) pad[i] ^= key[i];
      state.set(IV);
      compress(state, pad, 0);
    }
  }

  /** The MAC of `message` (UTF-8), base64url without padding. */
  digestBase64url(message: string): string {
    if (message.length * 3 > this.#buffer.length) this.#buffer = new Uint8Array(message.length * 3);
    const length = encoder.encodeInto(message, this.#buffer).written;
    const state = this.#state;
    state.set(this.#inner);
    finish(state, this.#buffer, length, 64);
    writeBigEndian(state, HASH);
    state.set(this.#outer);
    finish(state, HASH, 32, 64);
    writeBigEndian(state, HASH);
    return base64url(HASH);
  }
}

const HASH = new Uint8Array(32);

function writeBigEndian(state: Uint32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) {
    out[i * 4] = state[i] >>> 24;
    out[i * 4 + 1] = state[i] >>> 16;
    out[i * 4 + 2] = state[i] >>> 8;
    out[i * 4 + 3] = state[i];
  }
}

const BASE64URL_CODES = Array.from(BASE64URL, (c) => c.charCodeAt(0));
/** 43 character codes of a 32-byte digest, turned into one string at the end (no per-character strings). */
const CODES: number[] = new Array(43).fill(0);

/** base64url without padding of the 32-byte `bytes`. */
function base64url(bytes: Uint8Array): string {
  let c = 0;
  for (let i = 0; i < 30; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    CODES[c++] = BASE64URL_CODES[n >>> 18];
    CODES[c++] = BASE64URL_CODES[(n >>> 12) & 63];
    CODES[c++] = BASE64URL_CODES[(n >>> 6) & 63];
    CODES[c++] = BASE64URL_CODES[n & 63];
  }
  const n = (bytes[30] << 16) | (bytes[31] << 8);
  CODES[c++] = BASE64URL_CODES[n >>> 18];
  CODES[c++] = BASE64URL_CODES[(n >>> 12) & 63];
  CODES[c++] = BASE64URL_CODES[(n >>> 6) & 63];
  return String.fromCharCode.apply(null, CODES);
}
