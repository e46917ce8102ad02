/** Where the Upstash URL and token may come from, and the errors that say which variable to fix. */
import assert from "node:assert/strict";
import { parseRedisUrl } from "../../src/store/upstash/config.ts";

const URL = "https://eu1-fine-cat-123.upstash.io";

Deno.test("upstash config: nothing set means no Upstash store", () => {
  assert.equal(parseRedisUrl(undefined, {}), null);
  assert.equal(parseRedisUrl("  ", {}), null);
});

Deno.test("upstash config: the token from the URL, then AUXOT_REDIS_TOKEN, then UPSTASH_REDIS_REST_TOKEN", () => {
  assert.deepEqual(parseRedisUrl(`https://:tok1@eu1-fine-cat-123.upstash.io`, {}), { url: URL, token: "tok1" });
  assert.deepEqual(parseRedisUrl(`https://default:tok2@eu1-fine-cat-123.upstash.io/`, {}), { url: URL, token: "tok2" });
  assert.deepEqual(parseRedisUrl(`${URL}?token=tok3`, {}), { url: URL, token: "tok3" });
  assert.deepEqual(parseRedisUrl(URL, { AUXOT_REDIS_TOKEN: "tok4", UPSTASH_REDIS_REST_TOKEN: "x" }), {
    url: URL,
    token: "tok4",
  });
  assert.deepEqual(parseRedisUrl(URL, { UPSTASH_REDIS_REST_TOKEN: "tok5" }), { url: URL, token: "tok5" });
  assert.deepEqual(parseRedisUrl(`https://default:a%2Bb@eu1-fine-cat-123.upstash.io`, { AUXOT_REDIS_TOKEN: "x" }), {
    url: URL,
    token: "a+b",
  });
});

Deno.test("upstash config: Upstash's own variables work alone", () => {
  assert.deepEqual(
    parseRedisUrl(undefined, { UPSTASH_REDIS_REST_URL: URL, UPSTASH_REDIS_REST_TOKEN: "tok" }),
    { url: URL, token: "tok" },
  );
  assert.deepEqual(parseRedisUrl("http://127.0.0.1:8079", { AUXOT_REDIS_TOKEN: "t" }), {
    url: "http://127.0.0.1:8079",
    token: "t",
  });
});

Deno.test("upstash config: unusable settings are errors naming the variable, never showing the token", () => {
  assert.throws(() => parseRedisUrl("redis://default:secret@host:6379", {}), (err: Error) => {
    assert.match(err.message, /^AUXOT_REDIS_URL is a redis:\/\/ URL/);
    assert.match(err.message, /REST/);
    assert.doesNotMatch(err.message, /secret/);
    return true;
  });
  assert.throws(
    () => parseRedisUrl(undefined, { UPSTASH_REDIS_REST_URL: "rediss://x:secret@h:6379" }),
    /UPSTASH_REDIS_REST_URL is a redis:\/\/ URL/,
  );
  assert.throws(() => parseRedisUrl(URL, {}), /AUXOT_REDIS_URL is set but no Upstash token.*AUXOT_REDIS_TOKEN/);
  assert.throws(() => parseRedisUrl("http://db.example.com", { AUXOT_REDIS_TOKEN: "t" }), /must be an https:\/\//);
  assert.throws(() => parseRedisUrl("not a url", { AUXOT_REDIS_TOKEN: "t" }), /AUXOT_REDIS_URL is not a valid URL/);
});
