/**
 * Key verification: one valid key per role, verified with Argon2id once per deployment, then every key of that role
 * decided by a digest comparison — the valid one accepted and any other refused with no Argon2id and no throttle in
 * the way, here and in other isolates through the store. Before that first verification, a flood only delays the
 * address it comes from, and a key is never verified twice at once in an isolate.
 */
import assert from "node:assert/strict";
import { clientAddress, parseTrustedProxy } from "../../src/auth/client-address.ts";
import { generateKey, hashKey, type KeyRole, parsePhc } from "../../src/auth/keys.ts";
import { KeyVerifier, type VerifierOptions } from "../../src/auth/verifier.ts";
import { ApiError } from "../../src/http/errors.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";

const api = generateKey("api");
const admin = generateKey("admin");
const hashes = {
  api: parsePhc(await hashKey(api))!,
  admin: parsePhc(await hashKey(admin))!,
};

function setup(options: Partial<VerifierOptions> = {}) {
  const store = new EmbeddedStore({});
  const make = (h: Partial<Record<KeyRole, ReturnType<typeof parsePhc> & object>> = hashes) =>
    new KeyVerifier({ hashes: h, store, ...options });
  return { store, verifier: make(), make };
}

const refusal = (status: number) => (err: unknown) => err instanceof ApiError && err.status === status;
const wrongApiKey = () => generateKey("api");

Deno.test("once the key of a role is verified, every other key of that role is refused without Argon2id", async () => {
  const { verifier, make } = setup();
  assert.equal(await verifier.authenticate(api, ["api"], "c1"), "api");
  assert.equal(verifier.stats.argon2Verifications, 1);
  for (let i = 0; i < 50; i++) {
    await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], `10.0.0.${i % 3}`), refusal(401));
  }
  assert.equal(verifier.stats.argon2Verifications, 1, "50 wrong keys cost no Argon2id");
  for (let i = 0; i < 5; i++) assert.equal(await verifier.authenticate(api, ["api"], "10.0.0.1"), "api");
  // Another isolate or instance on the same store: it learns the digest from the store, not by hashing.
  const other = make();
  await assert.rejects(other.authenticate(wrongApiKey(), ["api"], "c2"), refusal(401));
  assert.equal(await other.authenticate(api, ["api"], "c2"), "api");
  assert.equal(other.stats.argon2Verifications, 0, "the store spared the second instance all hashing");
  // New hashes (a rotated key) mean a new secret and new store names: the old entry is not honoured.
  const rotated = make({ api: parsePhc(await hashKey(generateKey("api")))!, admin: hashes.admin });
  await assert.rejects(rotated.authenticate(api, ["api"], "c3"), refusal(401));
  assert.equal(rotated.stats.argon2Verifications, 1);
});

Deno.test("the store keeps the verified digest, not a 10-minute entry, and never the key", async () => {
  const { store, verifier } = setup();
  const seen: [string, string, number][] = [];
  const put = store.putVerifiedKey.bind(store);
  store.putVerifiedKey = (name, value, ttl) => {
    seen.push([name, value, ttl]);
    return put(name, value, ttl);
  };
  await verifier.authenticate(admin, ["admin"], "w");
  assert.equal(seen.length, 1);
  assert.ok(seen[0][2] >= 365 * 24 * 3_600_000, "kept for as long as the hash is unchanged");
  assert.ok(!JSON.stringify(seen).includes(admin.slice(4)), "the key itself is never stored");
});

Deno.test("malformed keys, wrong roles and a repeated wrong key cost no Argon2id", async () => {
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

Deno.test("a key that verifies is never refused for its address's failures", async () => {
  const { verifier } = setup({ maxVerificationsPerSecond: 1_000 });
  for (let i = 0; i < 12; i++) {
    await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "shared-proxy"), refusal(401));
  }
  assert.equal(await verifier.authenticate(api, ["api"], "shared-proxy"), "api", "first verification, same address");
  for (let i = 0; i < 30; i++) {
    await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "shared-proxy"), refusal(401));
  }
  assert.equal(await verifier.authenticate(api, ["api"], "shared-proxy"), "api");
});

Deno.test("before the first verification, a flood from one address waits behind a clean address", async () => {
  const { verifier } = setup({ maxVerificationsPerSecond: 4, maxWaitingPerClient: 64 });
  // The flooding address has failed already: its keys wait behind clients that have not.
  await assert.rejects(verifier.authenticate(wrongApiKey(), ["api"], "flood"), refusal(401));
  const flood = Array.from(
    { length: 30 },
    () => verifier.authenticate(wrongApiKey(), ["api"], "flood").catch((e) => e),
  );
  const runsBefore = await verifier.authenticate(api, ["api"], "legit").then(() => verifier.stats.argon2Verifications);
  assert.ok(runsBefore <= 8, `the valid key was verified after ${runsBefore} Argon2id runs, not behind the flood`);
  const outcomes = await Promise.all(flood);
  assert.ok(outcomes.every((e) => e instanceof ApiError && e.status === 401), "the rest refused by digest");
  assert.ok(verifier.stats.argon2Verifications <= 10, `${verifier.stats.argon2Verifications} runs in all`);
});

Deno.test("the same new key arriving many times at once is verified once (no shared promise)", async () => {
  const { verifier } = setup();
  const roles = await Promise.all(Array.from({ length: 6 }, () => verifier.authenticate(admin, ["admin"], "w")));
  assert.deepEqual(roles, Array(6).fill("admin"));
  assert.equal(verifier.stats.argon2Verifications, 1);
});

Deno.test("an address with too many keys waiting is told to retry; others are not", async () => {
  const { verifier } = setup({ maxVerificationsPerSecond: 1, maxWaitingPerClient: 3 });
  const flood = Array.from({ length: 8 }, () => verifier.authenticate(wrongApiKey(), ["api"], "flood").catch((e) => e));
  assert.equal(await verifier.authenticate(admin, ["admin"], "legit"), "admin");
  const outcomes = await Promise.all(flood);
  assert.ok(outcomes.some((e) => e instanceof ApiError && e.status === 429));
});

Deno.test("the client address comes from a header only when its proxy is trusted", () => {
  const problems: string[] = [];
  const headers = new Headers({
    "fly-client-ip": "198.51.100.9",
    "cf-connecting-ip": "198.51.100.8",
    "x-forwarded-for": "203.0.113.1, 198.51.100.7, 10.0.0.2",
  });
  assert.equal(clientAddress(headers, "10.0.0.2", parseTrustedProxy("", problems)), "10.0.0.2");
  assert.equal(clientAddress(headers, "10.0.0.2", parseTrustedProxy("fly", problems)), "198.51.100.9");
  assert.equal(clientAddress(headers, "10.0.0.2", parseTrustedProxy("cloudflare", problems)), "198.51.100.8");
  const nginx = parseTrustedProxy("10.0.0.2", problems);
  assert.equal(clientAddress(headers, "10.0.0.2", nginx), "198.51.100.7", "right-most untrusted hop");
  assert.equal(clientAddress(headers, "192.0.2.5", nginx), "192.0.2.5", "a direct client cannot pose by header");
  assert.deepEqual(problems, []);
  parseTrustedProxy("anyone please", problems);
  assert.match(problems[0], /AUXOT_TRUSTED_PROXY/);
});

Deno.test("a burst of one valid, never-verified key from one address is one key to verify: none refused", async () => {
  const { verifier } = setup();
  // More concurrent first requests than the per-address waiting limit: a caller's or a worker fleet's cold start.
  const roles = await Promise.all(Array.from({ length: 200 }, () => verifier.authenticate(api, ["api"], "10.1.1.1")));
  assert.ok(roles.every((role) => role === "api"));
  assert.equal(verifier.stats.argon2Verifications, 1, "one Argon2id run for the whole burst");
});
