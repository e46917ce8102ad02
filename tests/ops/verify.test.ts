/**
 * `deno task verify` run as a real subprocess against real routers: one with a worker (passes, prints TTFT,
 * tokens/s and wall time), one without (says no worker is connected and how to start one), a wrong key (401 advice)
 * and a port where nothing listens (router not running).
 */
import assert from "node:assert/strict";
import { eventually, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { startOpsRouter } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SCRIPT = new URL("../../scripts/verify.ts", import.meta.url).pathname;

async function verify(...args: string[]): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", SCRIPT, ...args],
    env: { NO_COLOR: "1", AUXOT_API_KEY: "", AUXOT_ROUTER_URL: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
}

Deno.test({ name: "verify: passes against a router with a worker, with timings", ...opts }, async () => {
  const router = await startOpsRouter();
  // Tokens spaced out, so that generation speed can be timed across several posts of events.
  const worker = startWorker(router, new ScriptedEngine({ tokenDelayMs: 40 }), { key: router.keys.admin });
  try {
    // As a person would: once the worker's log says it is ready.
    await eventually(async () => (await router.store.fleet()).workers.some((w) => w.info.loaded), 10_000, "worker");
    const result = await verify("--router-url", router.url, "--api-key", router.keys.api, "--prompt", "echo a b c d e");
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /router is up \(embedded store, model custom:tiny-test auto\); workers ready 1\/1/);
    assert.match(result.out, /API key accepted/);
    assert.match(result.out, /streamed 5 tokens: "a b c d e"/);
    assert.match(result.out, /time to first token +\d+(\.\d+)? m?s/);
    assert.match(result.out, /generation speed +\d+\.\d tokens\/s/);
    assert.match(result.out, /wall time +\d/);
    assert.match(result.out, /All checks passed/);
    assert.ok(!result.out.includes(router.keys.api), "the key is never printed");
  } finally {
    await worker.stop();
    await router.close();
  }
});

Deno.test({ name: "verify: no worker, wrong key, router not running — each with its fix", ...opts }, async () => {
  const router = await startOpsRouter();
  try {
    const none = await verify("--router-url", router.url, "--api-key", router.keys.api);
    assert.equal(none.code, 1);
    assert.match(none.out, /No worker is connected/);
    assert.match(none.out, /deno task worker:gpu --router-url http:\/\/127\.0\.0\.1:\d+ --gpu-key-file /);

    const wrong = await verify("--router-url", router.url, "--api-key", router.keys.admin);
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /rejected the API key \(401\)/);
    assert.match(wrong.out, /This is a worker key \(adm_…\); callers use the API key \(rtr_…\)/);
    assert.ok(!wrong.out.includes(router.keys.admin));

    const bogus = await verify("--router-url", router.url, "--api-key", "rtr_" + "A".repeat(43));
    assert.equal(bogus.code, 1);
    assert.match(bogus.out, /401/);
    assert.match(bogus.out, /deno task setup/);
  } finally {
    await router.close();
  }

  // A port nobody listens on: bind one, then free it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await verify("--router-url", `http://127.0.0.1:${port}`, "--api-key", "rtr_x");
  assert.equal(refused.code, 1);
  assert.match(refused.out, /connection refused/);
  assert.match(refused.out, /deno task start/);
});
