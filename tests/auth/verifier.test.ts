/**
 * Key verification: Argon2id once per key, then a keyed digest recognised in the isolate and through the store;
 * what wrong keys cost (nothing for malformed or wrong-role keys, one Argon2id for a new wrong key, nothing when it
 * comes again), and that floods are bounded per client and for the whole instance while known keys keep working.
 */
import assert from "node:assert/strict";
import { generateKey, hashKey, type KeyRole, parsePhc } from "../../src/auth/keys.ts";
import { KeyVerifier } from "../../src/auth/verifier.ts";
import { ApiError } from "../../src/http/errors.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { TestClock } from "../store/conformance.ts";

const api = generateKey("api");
const admin = generateKey("admin");
const hashes = {
  api: parsePhc(await hashKey(api))!,
  admin: parsePhc(await hashKey(admin))!,
};

function setup(options: { maxVerificationsPerSecond?: number } = {}) {
  const clock = new TestClock();
  const store = new EmbeddedStore({ now: clock.now });
  const make = (h: Partial<Record<KeyRole, ReturnType<typeof parsePhc> & object>> = hashes) =>
    new KeyVerifier({ hashes: h, store, now: clock.now, ...options });
  return { clock, store, verifier: make(), make };
}

const refusal = (status: number) => (err: unknown) => err instanceof ApiError && err.status === status;
const wrongApiKey = () => generateKey("api");

Deno.test("a key is verified with Argon2id once, then recognised by digest here and on other instances", async () => {
  const { verifier, make } = setup();
  for (let i = 0; i < 5; i++) assert.equal(await verifier.authenticate(api, ["api"], "c1"), "api");
  assert.equal(verifier.stats.argon2Verifications, 1);
  assert.equal(verifier.stats.cacheHits, 4);
  const other = make();
  assert.equal(await other.authenticate(api, ["api"], "c2"), "api");
  assert.equal(other.stats.argon2Verifications, 0, "the store's cache spared the second instance");
  // New hashes (a rotated key) mean a new digest secret: the old cache entry is not honoured.
  const rotated = make({ api: parsePhc(await hashKey(generateKey("api")))!, admin: hashes.admin });
  await assert.rejects(rotated.authenticate(api, ["api"], "c3"), refusal(401));
  assert.equal(rotated.stats.argon2Verifications, 1);
});

Deno.test("malformed keys, wrong roles and repeated wrong keys cost no Argon2id", async () => {
  const { verifier } = setup();
  await assert.rejects(verifier.authenticate(undefined, ["api"], "c"), refusal(401));
  await assert.rejects(verifier.authenticate("sk-not-ours", ["api"], "c"), refusal(401));
  await assert.rejects(verifier.authenticate(admin, ["api"], "c"), refusal(401));
  await assert.rejects(
    verifier.authenticate(generateKey("tools"), ["admin", "tools"], "c"),
    refusal(401),
    "no tools hash",
  );
  assert.equal(verifier.stats.argon2Verifications, 0);
  const wrong = wrongApiKey();
  await assert.rejects(verifier.authenticate(wrong, ["api"], "c"), refusal(401));
  await assert.rejects(verifier.authenticate(wrong, ["api"], "c"), refusal(401));
  assert.equal(verifier.stats.argon2Verifications, 1, "the second try of the same wrong key is refused from the table");
});

Deno.test("one client's failures are throttled; known keys keep working", async () => {
  const { verifier, clock } = setup({ maxVerificationsPerSecond: 1_000 });
  await verifier.authenticate(api, ["api"], "legit");
  for (let i = 0; i < 10; i++) {
    await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "attacker"), refusal(401));
  }
  const before = verifier.stats.argon2Verifications;
  await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "attacker"), refusal(429));
  assert.equal(verifier.stats.argon2Verifications, before, "a throttled client costs no hashing");
  assert.equal(await verifier.authenticate(api, ["api"], "attacker"), "api", "a known key still works");
  clock.advance(61_000);
  await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "attacker"), refusal(401), "the window passes");
});

Deno.test("a flood from many addresses spends a bounded Argon2id budget; known keys are unaffected", async () => {
  const { verifier, clock } = setup({ maxVerificationsPerSecond: 4 });
  await verifier.authenticate(api, ["api"], "legit");
  const outcomes: number[] = [];
  for (let i = 0; i < 40; i++) {
    outcomes.push(
      await verifier.authenticate(wrongApiKey(), ["api"], `10.0.0.${i}`).then(() => 200, (e: ApiError) => e.status),
    );
  }
  assert.ok(verifier.stats.argon2Verifications <= 1 + 4, `${verifier.stats.argon2Verifications} verifications`);
  assert.ok(outcomes.filter((s) => s === 429).length >= 35);
  assert.equal(await verifier.authenticate(api, ["api"], "legit"), "api");
  clock.advance(1_000);
  await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "10.0.1.1"), refusal(401), "the budget refills");
});
