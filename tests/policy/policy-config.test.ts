/**
 * The several-model policy's variables: AUXOT_MODELS, AUXOT_EMBEDDING_MODELS and AUXOT_MODEL_ALIASES on top of the
 * one-model variables (which keep their meaning); model resolution by name, alias and default; the lanes a worker
 * claims from; and which models a GPU worker brings up.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { ApiError } from "../../src/http/errors.ts";
import { scopeConversation } from "../../src/policy/dispatch.ts";
import { resolveModel, workerModelLanes } from "../../src/policy/route.ts";
import type { ChatRequest } from "../../src/protocol/chat.ts";
import type { WorkerInfo } from "../../src/protocol/worker-protocol.ts";
import { chooseModels } from "../../workers/gpu/model-set-engine.ts";
import { testKeys } from "../helpers/router.ts";

const keys = (await testKeys()).env;
const load = (env: Record<string, string>) => loadConfig({ ...keys, ...env });
const problems = (env: Record<string, string>): string[] => {
  try {
    load(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

Deno.test("one-model variables keep their meaning: the policy's default model and its settings", () => {
  const config = load({ AUXOT_MODEL: "Qwen3.5-35B-A3B", AUXOT_CTX_SIZE: "32768", AUXOT_MAX_PARALLEL: "3" });
  assert.equal(config.policy.model.name, "Qwen3.5-35B-A3B");
  assert.equal(config.policy.ctxSize, 32768);
  assert.equal(config.policy.maxParallel, 3);
  assert.deepEqual(config.policy.models?.map((m) => [m.name, m.kind, m.ctxSize, m.maxParallel]), [
    ["Qwen3.5-35B-A3B", "chat", 32768, 3],
  ]);
  assert.deepEqual(config.aliases, []);
});

Deno.test("AUXOT_MODELS and AUXOT_EMBEDDING_MODELS: own settings, defaults from the one-model variables", () => {
  const config = load({
    AUXOT_MODEL: "Qwen3.5-35B-A3B",
    AUXOT_CTX_SIZE: "65536",
    AUXOT_MODELS: "custom:small ctx=8192 parallel=4, custom:other quantization=Q8_0",
    AUXOT_EMBEDDING_MODELS: "nomic-embed-text-v1.5 quantization=Q8_0",
  });
  const models = config.policy.models!;
  assert.deepEqual(models.map((m) => [m.name, m.kind, m.ctxSize, m.maxParallel, m.quantization]), [
    ["Qwen3.5-35B-A3B", "chat", 65536, 2, undefined],
    ["custom:small", "chat", 8192, 4, undefined],
    ["custom:other", "chat", 65536, 2, "Q8_0"],
    ["nomic-embed-text-v1.5", "embedding", 2048, 2, "Q8_0"],
  ]);
  assert.equal(models[3].dimensions, 768);
  assert.equal(models[3].minDimensions, 64);
  assert.ok(models[3].files && models[3].files.length > 0);
});

Deno.test("mistakes stop start-up naming the variable", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ AUXOT_MODELS: "custom:a size=3" }, /^AUXOT_MODELS: "size=3"/],
    [{ AUXOT_MODELS: "custom:a parallel=0" }, /^AUXOT_MODELS: parallel=0/],
    [{ AUXOT_MODELS: "custom:a min-dimensions=8" }, /min-dimensions is a setting of embedding models/],
    [{ AUXOT_MODELS: "Qwen3.5-35B-A3Bx" }, /^AUXOT_MODELS: Unknown model "Qwen3.5-35B-A3Bx"\. Did you mean/],
    [{ AUXOT_MODELS: "nomic-embed-text-v1.5" }, /^AUXOT_MODELS: "nomic-embed-text-v1.5" is an embedding model/],
    [{ AUXOT_EMBEDDING_MODELS: "Qwen3.5-35B-A3B" }, /^AUXOT_EMBEDDING_MODELS: "Qwen3.5-35B-A3B" is a chat model/],
    [{ AUXOT_MODEL: "custom:a", AUXOT_MODELS: "custom:A" }, /listed twice/],
    [{ AUXOT_MODEL_ALIASES: "claude-haiku-*" }, /^AUXOT_MODEL_ALIASES: "claude-haiku-\*" is not PATTERN=MODEL/],
    [{ AUXOT_MODEL_ALIASES: "claude-*=nowhere" }, /^AUXOT_MODEL_ALIASES: "claude-\*" maps to "nowhere"/],
    [{ AUXOT_ENGINE: "cli", AUXOT_MODEL: "opus", AUXOT_MODELS: "custom:x" }, /need GPU workers/],
  ];
  for (const [env, pattern] of cases) {
    const found = problems(env);
    assert.ok(found.some((p) => pattern.test(p)), `${JSON.stringify(env)} → ${JSON.stringify(found)}`);
  }
});

Deno.test("a request's model: its name, an automatic claude-* id, the first matching alias, else the default", () => {
  const config = load({
    AUXOT_MODEL: "custom:big",
    AUXOT_MODELS: "custom:small",
    AUXOT_EMBEDDING_MODELS: "custom:embed, custom:embed2",
    AUXOT_MODEL_ALIASES: "claude-haiku-*=small, gpt-*-mini=small, text-embedding-3-large=embed2, claude-*=big",
  });
  const chat = (name: string) => resolveModel(config.policy, config.aliases, name, "chat").name;
  const embed = (name: string) => resolveModel(config.policy, config.aliases, name, "embedding").name;
  assert.equal(chat("SMALL"), "custom:small");
  assert.equal(chat("custom:small"), "custom:small");
  assert.equal(chat("claude-haiku-4-5-20251001"), "custom:small");
  assert.equal(chat("claude-small"), "custom:small", "automatic alias");
  assert.equal(chat("gpt-4o-mini"), "custom:small");
  assert.equal(chat("gpt-4o"), "custom:big");
  assert.equal(chat("claude-opus-4-8"), "custom:big");
  assert.equal(chat(""), "custom:big");
  assert.equal(embed("text-embedding-3-small"), "custom:embed");
  assert.equal(embed("text-embedding-3-large"), "custom:embed2");
  assert.throws(() => chat("embed"), (e) => e instanceof ApiError && e.status === 400);
  assert.throws(() => embed("small"), (e) => e instanceof ApiError && e.status === 400);
  const none = load({ AUXOT_MODEL: "custom:big" });
  assert.throws(
    () => resolveModel(none.policy, none.aliases, "x", "embedding"),
    (e) => e instanceof ApiError && e.status === 501,
  );
});

Deno.test("a worker claims from the lanes of its models with a free slot, at most the smallest free count", () => {
  const config = load({ AUXOT_MODEL: "custom:big", AUXOT_MODELS: "custom:small", AUXOT_EMBEDDING_MODELS: "custom:e" });
  const worker = (models: WorkerInfo["models"], free = 4): WorkerInfo => ({
    id: "w-00000001",
    kind: "gpu",
    slots: 6,
    free,
    models,
  });
  // Older workers and external engines list no models: they serve the default model.
  assert.deepEqual(workerModelLanes(config.policy, worker(undefined), 0), { lanes: ["chat:custom:big"], max: 4 });
  const both = worker([
    { model: "custom:big", kind: "chat", slots: 2, free: 2 },
    { model: "custom:small", kind: "chat", slots: 2, free: 1 },
    { model: "custom:e", kind: "embedding", slots: 2, free: 0 },
  ], 3);
  assert.deepEqual(workerModelLanes(config.policy, both, 0), {
    lanes: ["chat:custom:big", "chat:custom:small"],
    max: 1,
  });
  assert.deepEqual(workerModelLanes(config.policy, both, 1).lanes, ["chat:custom:small", "chat:custom:big"], "rotates");
  // A model the policy does not hold (any more) gets nothing.
  assert.deepEqual(
    workerModelLanes(config.policy, worker([{ model: "custom:gone", kind: "chat", slots: 1, free: 1 }]), 0),
    {
      lanes: [],
      max: 0,
    },
  );
});

Deno.test("which models a GPU worker brings up: --models order, else the policy's; files by name", () => {
  const config = load({
    AUXOT_MODEL: "Qwen3.5-35B-A3B",
    AUXOT_MODELS: "custom:small",
    AUXOT_EMBEDDING_MODELS: "nomic-embed-text-v1.5",
  });
  const models = config.policy.models!;
  const all = chooseModels(models, { modelPaths: ["small=/m/small.gguf"], models: [] });
  assert.deepEqual(all.chosen.map((c) => [c.model.name, c.path]), [
    ["Qwen3.5-35B-A3B", undefined],
    ["custom:small", "/m/small.gguf"],
    ["nomic-embed-text-v1.5", undefined],
  ]);
  const named = chooseModels(models, {
    modelPaths: ["/m/small.gguf"],
    models: ["custom:SMALL", "nomic-embed-text-v1.5", "nope"],
  });
  assert.deepEqual(named.chosen.map((c) => [c.model.name, c.path]), [
    ["custom:small", "/m/small.gguf"],
    ["nomic-embed-text-v1.5", undefined],
  ]);
  assert.match(named.notes.join("\n"), /no model "nope"/);
  const noFile = chooseModels(models, { modelPaths: [], models: ["small"] });
  assert.deepEqual(noFile.chosen, []);
  assert.match(noFile.notes[0], /custom:small skipped: a custom model needs --model-path custom:small=FILE/);
});

Deno.test("docs/models.md's example loads: big model, small model, embeddings, aliases", () => {
  const config = load({
    AUXOT_MODEL: "Qwen3.5-35B-A3B",
    AUXOT_MODELS: "Qwen3-8B ctx=32768 parallel=4",
    AUXOT_EMBEDDING_MODELS: "nomic-embed-text-v1.5",
    AUXOT_MODEL_ALIASES: "claude-haiku-*=Qwen3-8B, gpt-*-mini=Qwen3-8B",
  });
  assert.equal(resolveModel(config.policy, config.aliases, "claude-haiku-4-5", "chat").name, "Qwen3-8B");
  assert.equal(resolveModel(config.policy, config.aliases, "claude-sonnet-5", "chat").name, "Qwen3.5-35B-A3B");
  assert.equal(
    resolveModel(config.policy, config.aliases, "text-embedding-3-small", "embedding").name,
    "nomic-embed-text-v1.5",
  );
});

Deno.test("a session's affinity key names its model when the policy has several chat models", () => {
  const request = {
    requestedModel: "x",
    messages: [],
    tools: [],
    toolChoice: "auto",
    stop: [],
    conversationKey: "h:session-1",
  } as unknown as ChatRequest;
  const several = load({ AUXOT_MODEL: "custom:big", AUXOT_MODELS: "custom:small" });
  const [big, small] = several.policy.models!;
  assert.equal(scopeConversation(several.policy, request, big).conversationKey, "custom:big|h:session-1");
  const scoped = scopeConversation(several.policy, request, small);
  assert.equal(scoped.conversationKey, "custom:small|h:session-1");
  assert.equal(scopeConversation(several.policy, scoped, small), scoped, "idempotent (the tool loop re-enqueues)");
  assert.equal(request.conversationKey, "h:session-1", "the caller's request is not changed");
  const one = load({ AUXOT_MODEL: "custom:big", AUXOT_EMBEDDING_MODELS: "custom:e" });
  assert.equal(scopeConversation(one.policy, request, one.policy.models![0]), request, "one chat model: unchanged");
});
