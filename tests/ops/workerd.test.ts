/**
 * Operations on Workers: the real router bundle under real workerd with the Upstash store (a real redis-server
 * behind the Upstash REST bridge fixture). The dashboard's files are served with their security headers, and the
 * status API reads counters that were summed in the store (shared mode) rather than held by one isolate.
 */
import assert from "node:assert/strict";
import { generateKey, hashKey } from "../../src/auth/keys.ts";
import type { StatusReport } from "../../src/ops/status.ts";
import { startWorkersStack } from "../fixtures/workers-stack.ts";
import type { WorkerdInstance } from "../fixtures/workerd.ts";

Deno.test("ops under workerd: dashboard files, status API with counters summed in Upstash", async () => {
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

    const page = await fetch(`${url}/dashboard`);
    const html = await page.text();
    assert.equal(page.status, 200, html + logs());
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.match(html, /<script src="\/dashboard\/app\.js\?v=[0-9a-f]{8}" defer><\/script>/);
    const script = await fetch(`${url}/dashboard/app.js`);
    assert.match(script.headers.get("content-type") ?? "", /javascript/);
    assert.match(await script.text(), /sessionStorage/);

    assert.equal((await fetch(`${url}/api/status`)).status, 401);
    for (let i = 0; i < 3; i++) {
      const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
      assert.equal(models.status, 200, (await models.text()) + logs());
    }
    const response = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${adminKey}` } });
    const text = await response.text();
    assert.equal(response.status, 200, text + logs());
    const report = JSON.parse(text) as StatusReport;
    assert.equal(report.instance.store, "upstash");
    assert.equal(report.instance.countersShared, true);
    assert.ok(report.counters.requests.byApi.openai >= 3, JSON.stringify(report.counters));
    assert.ok(report.counters.storeCommands > 0, "store commands are counted in the store too");
    assert.equal(report.health.status, "degraded");
    assert.ok(!text.includes(adminKey) && !text.includes(apiKey));
  } finally {
    await router?.stop();
    await stack.close();
  }
});
