/**
 * Secrets never reach a log: the scenario of tests/reliability/secrets.ts (router on the Upstash store at debug
 * level, scripted workers with one killed mid-load, a tools worker using a credential from the router's
 * environment, an unused tool credential AUXOT_TOOLS_X__TOKEN, wrong keys) — no key, token or credential may appear
 * in any line any process wrote, nor in the status and metrics pages.
 */
import assert from "node:assert/strict";
import { runSecretsScenario } from "./secrets.ts";

Deno.test("reliability: no key, token or credential appears in any log line at debug level", async () => {
  const f = await runSecretsScenario();
  console.log(`${f.secrets} secrets searched in ${f.lines} lines (${f.debugLines} at debug level) and 2 pages`);
  const t = f.chatTally;
  assert.equal(t.hung + t.duplicated + t.malformed + t.truncated, 0, JSON.stringify(t));
  assert.ok(f.debugLines > 100, "a debug-level scenario");
  assert.deepEqual(f.leaks, [], "a secret appears in the output");
});
