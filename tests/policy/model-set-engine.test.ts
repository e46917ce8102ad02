/**
 * The GPU worker's several-model engine on real llama.cpp (tiny generated models): it brings up the models it is
 * given files for, reports each with its own slots, runs chat and embedding jobs on the right model, and hands back
 * (retryable, before any output) a job for a model it does not serve.
 */
import assert from "node:assert/strict";
import type { JobEvent } from "../../src/protocol/events.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";
import { ModelSetEngine } from "../../workers/gpu/model-set-engine.ts";
import { testKeys } from "../helpers/router.ts";
import { MULTI_MODEL_ENV, removeModels, writeModels } from "./multi-model-fleet.ts";

Deno.test(
  { name: "model-set engine: per-model slots, jobs on their model, hand-back", sanitizeResources: false },
  async () => {
    const files = await writeModels();
    const config = loadConfig({ ...(await testKeys()).env, ...MULTI_MODEL_ENV });
    const engine = new ModelSetEngine({
      modelPaths: [`tiny-small=${files.small}`, `custom:tiny-embed=${files.embed}`],
      models: [],
      threads: 1,
    }, createLogger("error", () => {}));
    try {
      const loaded = await engine.applyPolicy(config.policy);
      assert.equal(loaded?.policyVersion, config.policy.version);
      assert.match(loaded?.note ?? "", /custom:tiny-big skipped: a custom model needs --model-path/);
      const models = engine.describe().models!;
      assert.deepEqual(models.map((m) => [m.model, m.kind, m.slots, m.free]), [
        ["custom:tiny-small", "chat", 1, 1],
        ["custom:tiny-embed", "embedding", 2, 2],
      ]);
      assert.equal(models[1].dimensions, 48);
      assert.equal(engine.slots(), 3);

      const run = async (job: WorkerJob) => {
        const events: JobEvent[] = [];
        await engine.run(job, { emit: (e) => events.push(e) }, new AbortController().signal);
        return events;
      };
      const chat = (model: string): WorkerJob => ({
        id: `job-${model}`,
        kind: "chat",
        model,
        mode: "generate",
        attempt: 1,
        deadlineMs: 60_000,
        request: {
          requestedModel: model,
          messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
          tools: [],
          toolChoice: "auto",
          stop: [],
          maxTokens: 4,
        },
      } as WorkerJob);
      const small = await run(chat("custom:tiny-small"));
      assert.equal(small[0].type === "start" && small[0].model, "custom:tiny-small");
      assert.equal(small.at(-1)?.type, "done");
      const big = await run(chat("custom:tiny-big"));
      assert.deepEqual(big, [{
        type: "error",
        code: "model_not_loaded",
        message: "this worker does not serve custom:tiny-big",
        retryable: true,
      }]);
      const embedded = await run({
        id: "job-embed",
        kind: "embedding",
        model: "custom:tiny-embed",
        input: ["a", "b"],
        attempt: 1,
        deadlineMs: 60_000,
      });
      assert.deepEqual(embedded.map((e) => e.type), ["start", "embedding", "embedding", "usage", "done"]);
    } finally {
      await engine.dispose();
      await removeModels(files);
    }
  },
);
