/**
 * The real router bundle (src/entry-workers.ts, built by scripts/build-workers.ts) under real workerd, with its
 * Upstash store pointed at a real redis-server through the Upstash REST bridge fixture. Key hashes are made here
 * under Deno with hash-wasm, so a 200 on an authenticated route also proves Argon2id verification inside workerd
 * (precompiled WASM). The HTTP-level API suite reuses tests/fixtures/workerd.ts the same way.
 */
import assert from "node:assert/strict";
import { generateKey, hashKey } from "../../src/auth/keys.ts";
import { startWorkersStack } from "../fixtures/workers-stack.ts";
import type { WorkerdInstance } from "../fixtures/workerd.ts";

Deno.test("router bundle under workerd: /health and authenticated /v1/models", async (t) => {
  const stack = await startWorkersStack();
  let router: WorkerdInstance | undefined;
  try {
    const apiKey = generateKey("api");
    const adminKey = generateKey("admin");
    router = await stack.startRouter({
      AUXOT_API_KEY_HASH: await hashKey(apiKey),
      AUXOT_ADMIN_KEY_HASH: await hashKey(adminKey),
    });
    const url = router.url;
    const logs = () => `\nworkerd logs:\n${router?.logs()}`;
    /** The JSON body of a response that must have `status`; otherwise fails with the body and workerd's logs. */
    const expectJson = async (response: Response, status: number) => {
      const text = await response.text();
      assert.equal(response.status, status, text + logs());
      return JSON.parse(text);
    };

    await t.step("GET /health answers from the Upstash store", async () => {
      const body = await expectJson(await fetch(`${url}/health`), 200);
      assert.equal(body.store, "upstash");
      assert.ok(["ok", "degraded"].includes(body.status), JSON.stringify(body));
    });

    await t.step("GET /v1/models with the API key lists the policy's model", async () => {
      const response = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
      const body = await expectJson(response, 200);
      assert.equal(body.object, "list");
      assert.equal(body.data.length, 1);
      assert.equal(typeof body.data[0].id, "string");
      assert.equal(body.data[0].object, "model");
    });

    await t.step("GET /v1/models without a key, or with a wrong one, is refused", async () => {
      await expectJson(await fetch(`${url}/v1/models`), 401);
      const wrongKey = { authorization: `Bearer ${generateKey("api")}` };
      await expectJson(await fetch(`${url}/v1/models`, { headers: wrongKey }), 401);
    });
  } finally {
    await router?.stop();
    await stack.close();
  }
});
