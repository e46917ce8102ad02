/**
 * The router's synchronous HMAC-SHA-256 (src/platform/hmac-sha256.ts) gives node:crypto's bytes for every message
 * length around the block boundaries, for multi-byte text, and for keys of 0 to 64 bytes.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { HmacSha256 } from "../../src/platform/hmac-sha256.ts";

const reference = (key: Uint8Array, message: string) => createHmac("sha256", key).update(message).digest("base64url");

Deno.test("HMAC-SHA-256 matches node:crypto for messages of 0 to 300 characters", () => {
  const key = new Uint8Array(randomBytes(32));
  const mac = new HmacSha256(key);
  for (let length = 0; length <= 300; length++) {
    const message = Array.from({ length }, (_, i) => String.fromCharCode(33 + ((i * 7 + length) % 90))).join("");
    assert.equal(mac.digestBase64url(message), reference(key, message), `length ${length}`);
  }
});

Deno.test("HMAC-SHA-256 matches node:crypto for multi-byte text and a long message", () => {
  const key = new Uint8Array(randomBytes(32));
  const mac = new HmacSha256(key);
  for (const message of ["é", "rtr_ключ😀", "\u0000\u2028x", "😀".repeat(40), "a".repeat(5_000)]) {
    assert.equal(mac.digestBase64url(message), reference(key, message));
  }
});

Deno.test("HMAC-SHA-256 matches node:crypto for keys of 0 to 64 bytes and refuses longer ones", () => {
  for (let length = 0; length <= 64; length++) {
    const key = new Uint8Array(randomBytes(length));
    assert.equal(new HmacSha256(key).digestBase64url("rtr_abc"), reference(key, "rtr_abc"), `key length ${length}`);
  }
  assert.throws(() => new HmacSha256(new Uint8Array(65)), RangeError);
});
