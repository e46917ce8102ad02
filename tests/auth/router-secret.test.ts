/**
 * The router's synchronous key MAC (src/auth/router-secret.ts) gives the bytes of HMAC-SHA-256 as WebCrypto computes
 * it with the same derived key — across lengths around the block boundaries, multi-byte text and a long message — so
 * digests and lease tokens are the standard construction whatever computes them.
 */
import assert from "node:assert/strict";
import { base64url, hashKey, parsePhc } from "../../src/auth/keys.ts";
import { deriveRouterKey, hmacBase64url } from "../../src/auth/router-secret.ts";

async function webCryptoMac(seed: Uint8Array<ArrayBuffer>, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", seed, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return base64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text))));
}

Deno.test("router key MACs equal WebCrypto's HMAC-SHA-256 under the same derived key", async () => {
  const hashes = { api: parsePhc(await hashKey("rtr_test"))!, admin: parsePhc(await hashKey("adm_test"))! };
  const key = await deriveRouterKey(hashes, "digest");
  // The seed as deriveRouterKey builds it, recomputed here from its documented recipe.
  const material = (Object.keys(hashes) as (keyof typeof hashes)[]).sort()
    .map((role) => `${role}:${base64url(hashes[role].salt)}:${base64url(hashes[role].hash)}`).join("|");
  const seed = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`auxot-router-secret-v1|digest|${material}`)),
  );
  const messages = [
    ...Array.from({ length: 140 }, (_, n) => "k".repeat(n)),
    "é",
    "rtr_ключ😀",
    "\u0000\u2028x",
    "a".repeat(5_000),
  ];
  for (const message of messages) {
    assert.equal(await hmacBase64url(key, message), await webCryptoMac(seed, message), `message of ${message.length}`);
  }
  const other = await deriveRouterKey(hashes, "lease");
  assert.notEqual(await hmacBase64url(other, "x"), await hmacBase64url(key, "x"), "each label has its own key");
});
