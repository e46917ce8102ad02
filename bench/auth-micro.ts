/**
 * What authenticating one request costs inside the router, as its own process: the KeyVerifier with a key it has
 * already verified (the cached path every request after the first takes: an HMAC digest and a map lookup) vs the
 * first verification of a key (Argon2id, ~100 ms in WASM). Prints one JSON line.
 *
 *   deno run -A bench/auth-micro.ts '{"cachedCalls": 20000, "batches": 5, "firstVerifications": 5}'
 */
import { z } from "zod";
import { generateKey, hashKey, parsePhc } from "../src/auth/keys.ts";
import { KeyVerifier } from "../src/auth/verifier.ts";
import { EmbeddedStore } from "../src/store/embedded.ts";

export const AuthMicroInput = z.object({
  cachedCalls: z.number().int().positive(),
  batches: z.number().int().positive(),
  firstVerifications: z.number().int().positive(),
});

export const AuthMicroResult = z.object({
  /** Microseconds per authenticate() with a cached key, one figure per batch. */
  cachedUs: z.array(z.number()),
  /** Milliseconds for a first verification (fresh verifier and store), one figure per try. */
  firstMs: z.array(z.number()),
});

async function main(): Promise<void> {
  const input = AuthMicroInput.parse(JSON.parse(Deno.args[0] ?? "{}"));
  const apiKey = generateKey("api");
  const adminKey = generateKey("admin");
  const hashes = { api: parsePhc(await hashKey(apiKey))!, admin: parsePhc(await hashKey(adminKey))! };

  const firstMs: number[] = [];
  for (let i = 0; i < input.firstVerifications; i++) {
    const store = new EmbeddedStore({});
    const verifier = new KeyVerifier({ hashes, store });
    const t0 = performance.now();
    await verifier.authenticate(apiKey, ["api"], "bench");
    firstMs.push(performance.now() - t0);
    await store.close();
  }

  const store = new EmbeddedStore({});
  const verifier = new KeyVerifier({ hashes, store });
  await verifier.authenticate(apiKey, ["api"], "bench");
  // Warm the cached path up before timing it.
  for (let i = 0; i < Math.min(input.cachedCalls, 5_000); i++) await verifier.authenticate(apiKey, ["api"], "bench");
  const cachedUs: number[] = [];
  for (let b = 0; b < input.batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < input.cachedCalls; i++) await verifier.authenticate(apiKey, ["api"], "bench");
    cachedUs.push(((performance.now() - t0) * 1000) / input.cachedCalls);
  }
  if (verifier.stats.argon2Verifications !== 1) throw new Error("the cached path ran Argon2id again");
  await store.close();
  console.log(JSON.stringify(AuthMicroResult.parse({ cachedUs, firstMs })));
}

if (import.meta.main) await main();
