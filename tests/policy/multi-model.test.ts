/**
 * Several models, one fleet, on both stores and under workerd: two tiny chat models of different size and
 * vocabulary on two workers plus one worker serving both (and an embedding model), real GPU worker processes.
 * The Deno + embedded run also drives the real Claude Code CLI (pinned) with `--model haiku`.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startWorkersStack } from "../fixtures/workers-stack.ts";
import { startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";
import { UpstashStore } from "../../src/store/upstash/store.ts";
import { eventually, type RouterTarget, startDenoRouter, TEST_ENV, testKeys } from "../helpers/router.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { type ModelFiles, MULTI_MODEL_ENV, removeModels, startFleet, writeModels } from "./multi-model-fleet.ts";
import { embeddingChecks, routingChecks } from "./multi-model-suite.ts";
import { PINNED_CLAUDE, runClaude } from "../helpers/claude-cli.ts";

let models: Promise<ModelFiles> | undefined;
const files = () => models ??= writeModels();
const options = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "several models: Deno, embedded store (and Claude Code's haiku)", ...options }, async (t) => {
  const router = await startDenoRouter(MULTI_MODEL_ENV);
  const fleet = await startFleet(router, await files());
  try {
    await routingChecks(t, router, fleet, await files());
    await embeddingChecks(t, router, fleet);
    await t.step("Claude Code (pinned CLI) with --model haiku is served by the small model", async () => {
      const count = (lines: string[]) => lines.filter((l) => l.includes('"job started"')).length;
      const before = { a: count(fleet.a.stderr), b: count(fleet.b.stderr), c: count(fleet.c.stderr) };
      const run = await claudeCode(router, ["--model", "haiku", "--bare", "--tools", ""]);
      const result = run.lines.find((l) => l.type === "result");
      assert.ok(result, `no result line; exit ${run.code}\n${run.stdout.slice(-1500)}\n${run.stderr.slice(-1500)}`);
      assert.equal(result.is_error, false, JSON.stringify(result));
      assert.equal(run.lines.find((l) => l.subtype === "init")?.claude_code_version, "2.1.197", "the pinned CLI");
      // The reply names the model that served (when the random model said anything at all: Claude Code's prompt
      // changes with the date, and the tiny model sometimes ends its turn at once).
      for (const line of run.lines.filter((l) => l.type === "assistant")) {
        assert.equal(line.message?.model, "custom:tiny-small", JSON.stringify(line));
      }
      // Every request of the run went to a worker serving tiny-small, none to box A (tiny-big only).
      const started = (lines: string[]) => lines.filter((l) => l.includes('"job started"')).length;
      assert.equal(started(fleet.a.stderr), before.a);
      assert.ok(started(fleet.b.stderr) + started(fleet.c.stderr) > before.b + before.c);
    });
  } finally {
    await fleet.stop();
    await router.close();
  }
});

Deno.test(
  { name: "several models: Deno, Upstash store (redis-server behind the REST bridge)", ...options },
  async (t) => {
    const redis = await startRedisServer();
    const token = crypto.randomUUID();
    const bridge = await startUpstashBridge({ redisPort: redis.port, token });
    const store = new UpstashStore({
      url: bridge.url,
      token,
      prefix: `multi-${Date.now()}`,
      options: { leaseMs: 30_000 },
    });
    const router = await startDenoRouter(MULTI_MODEL_ENV, { store });
    try {
      const fleet = await startFleet(router, await files());
      try {
        await routingChecks(t, router, fleet, await files());
        await embeddingChecks(t, router, fleet);
      } finally {
        await fleet.stop();
      }
    } finally {
      await router.close();
      await store.close();
      await bridge.close();
      await redis.stop();
    }
  },
);

Deno.test({ name: "several models: workerd (Upstash store)", ...options }, async (t) => {
  const stack = await startWorkersStack();
  const keys = await testKeys();
  const instance = await stack.startRouter({ ...TEST_ENV, ...keys.env, ...MULTI_MODEL_ENV });
  const router: RouterTarget = {
    kind: "workerd",
    url: instance.url,
    keys,
    get logs() {
      return instance.logs().split("\n");
    },
    close: () => instance.stop(),
  };
  try {
    const fleet = await startFleet(router, await files());
    try {
      await routingChecks(t, router, fleet, await files());
      await embeddingChecks(t, router, fleet);
    } finally {
      await fleet.stop();
    }
  } finally {
    await router.close();
    await stack.close();
  }
});

Deno.test(
  { name: "several models: with no worker connected, the queue timeout's 503 names the model", ...options },
  async () => {
    const router = await startDenoRouter({ ...MULTI_MODEL_ENV, AUXOT_QUEUE_TIMEOUT: "1s" });
    const openai = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    try {
      const err = await openai.chat.completions.create({
        model: "claude-haiku-4-5",
        messages: [{ role: "user", content: "hi" }],
      }).catch((e) => e);
      assert.equal(err.status, 503);
      assert.match(err.message, /no worker serving the model "custom:tiny-small" took the job in time/);
      // Once a worker serving only tiny-big is connected, asking for tiny-small is refused at once.
      const worker = spawnGpuWorker(router, `tiny-big=${(await files()).big}`, ["--models", "tiny-big"]);
      try {
        await eventually(async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1, 60_000);
        const started = Date.now();
        const refused = await openai.chat.completions.create({
          model: "tiny-small",
          messages: [{ role: "user", content: "hi" }],
        }).catch((e) => e);
        assert.equal(refused.status, 503);
        assert.match(refused.message, /No connected worker serves the model "custom:tiny-small".*custom:tiny-big/);
        assert.ok(Date.now() - started < 900, "before the queue timeout");
      } finally {
        await worker.stop();
      }
    } finally {
      await router.close();
    }
  },
);

Deno.test({ name: "several models: teardown", ...options }, async () => {
  if (models) await removeModels(await models);
});

async function claudeCode(router: RouterTarget, args: string[]) {
  const home = await Deno.makeTempDir({ prefix: "auxot-claude-multi-" });
  try {
    return await runClaude(
      PINNED_CLAUDE.binary,
      ["-p", "Say hello.", "--output-format", "stream-json", "--verbose", "--no-session-persistence", ...args],
      home,
      { ANTHROPIC_BASE_URL: router.url, ANTHROPIC_API_KEY: router.keys.api },
    );
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}
