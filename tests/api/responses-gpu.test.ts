/**
 * The Responses API against a real GPU worker (workers/gpu/main.ts as its own process) on a generated tiny model,
 * through the official `openai` SDK: what the grammar-constrained engine guarantees even from a random model —
 * json_schema output valid against its schema, a forced function call whose arguments fit the tool's schema, and
 * forced custom-tool calls generated inside the tool's regex or Lark grammar (translated to GBNF,
 * workers/gpu/lark-to-gbnf.ts) — plus usage with cached tokens when a conversation comes back.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { larkMatches, parseLark } from "../../src/protocol/lark-grammar.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { eventually, startDenoRouter } from "../helpers/router.ts";
import { APPLY_PATCH_LARK, applyPatchTool } from "./responses-suite.ts";

/** A patch-like Lark grammar that a random model always finishes (every repetition is bounded). */
const SMALL_PATCH_LARK = `start: "*** Begin Patch" LF op~1..3 "*** End Patch"
op: delete | add
delete: "*** Delete File: " NAME LF
add: "*** Add File: " NAME LF ("+" /[a-z ]{0,6}/ LF)~1..2
NAME: /[a-z]{1,8}\\.txt/
%import common.LF
`;

Deno.test({
  name: "Responses API with a tiny-model GPU worker: schemas, forced calls and custom grammars hold",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-responses-gpu-"));
  const modelPath = join(dir, "tiny.gguf");
  await writeTinyGguf(modelPath, {});
  const router = await startDenoRouter({ AUXOT_MAX_PARALLEL: "1" });
  const worker = spawnGpuWorker(router, modelPath);
  const client = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      60_000,
      "the worker",
    );

    await t.step("text.format json_schema: the output parses and is valid against the schema", async () => {
      const Answer = z.object({ city: z.string().max(12), unit: z.enum(["c", "f"]) });
      const parsed = await client.responses.parse({
        model: "any",
        input: "Weather as JSON.",
        max_output_tokens: 300,
        text: { format: zodTextFormat(Answer, "answer") },
      });
      assert.equal(parsed.status, "completed");
      assert.ok(parsed.output_parsed, parsed.output_text);
      Answer.parse(parsed.output_parsed);
    });

    await t.step("a forced function tool: a call whose arguments fit the tool's schema", async () => {
      const Args = z.object({ city: z.string().max(12) }).strict();
      const stream = client.responses.stream({
        model: "any",
        input: "Weather in Paris?",
        max_output_tokens: 200,
        tools: [{
          type: "function",
          name: "get_weather",
          strict: true,
          parameters: {
            type: "object",
            properties: { city: { type: "string", maxLength: 12 } },
            required: ["city"],
            additionalProperties: false,
          },
        }],
        tool_choice: { type: "function", name: "get_weather" },
      });
      let deltas = "";
      for await (const event of stream) {
        if (event.type === "response.function_call_arguments.delta") deltas += event.delta;
      }
      const response = await stream.finalResponse();
      const call = response.output.find((item) => item.type === "function_call");
      assert.ok(call?.type === "function_call", JSON.stringify(response.output));
      assert.equal(call.name, "get_weather");
      assert.equal(deltas, call.arguments);
      Args.parse(JSON.parse(call.arguments));
    });

    await t.step("forced custom tools: inputs generated inside a regex and a Lark grammar", async () => {
      const regex = "(yes|no): [a-z]{1,8}";
      const small = parseLark(SMALL_PATCH_LARK);
      {
        const answer = await client.responses.create({
          model: "any",
          input: "Answer.",
          max_output_tokens: 200,
          temperature: 1,
          tools: [{ type: "custom", name: "answer", format: { type: "grammar", syntax: "regex", definition: regex } }],
          tool_choice: { type: "custom", name: "answer" },
        });
        const call = answer.output.find((item) => item.type === "custom_tool_call");
        assert.ok(call?.type === "custom_tool_call", JSON.stringify(answer.output));
        assert.match(call.input, new RegExp(`^(?:${regex})$`));

        const patch = await client.responses.create({
          model: "any",
          input: "Patch.",
          max_output_tokens: 400,
          tools: [{ ...applyPatchTool, format: { ...applyPatchTool.format, definition: SMALL_PATCH_LARK } }],
          tool_choice: { type: "custom", name: "apply_patch" },
        });
        const patchCall = patch.output.find((item) => item.type === "custom_tool_call");
        assert.ok(patchCall?.type === "custom_tool_call", JSON.stringify(patch.output));
        assert.ok(larkMatches(small, patchCall.input), JSON.stringify(patchCall.input));
        assert.match(patchCall.input, /^\*\*\* Begin Patch\n\*\*\* (Add|Delete) File: /);
      }
    });

    await t.step(
      "Codex's apply_patch grammar compiles in llama.cpp; a call cut off by the limit is left out",
      async () => {
        const response = await client.responses.create({
          model: "any",
          input: "Patch.",
          max_output_tokens: 40,
          tools: [applyPatchTool],
          tool_choice: { type: "custom", name: "apply_patch" },
        });
        assert.equal(response.status, "incomplete");
        assert.deepEqual(response.incomplete_details, { reason: "max_output_tokens" });
        assert.ok(!response.output.some((item) => item.type === "custom_tool_call"));
        assert.ok(
          !worker.stderr.some((line) => /custom tool grammar/.test(line)),
          "the GBNF was used, not the fallback",
        );
        assert.ok(parseLark(APPLY_PATCH_LARK));
      },
    );

    await t.step("usage: the same conversation again reuses the cached prompt", async () => {
      const input = [{ role: "user" as const, content: "A long enough opening message for the cache. ".repeat(8) }];
      const first = await client.responses.create({
        model: "any",
        input,
        max_output_tokens: 4,
        prompt_cache_key: "c1",
      });
      const second = await client.responses.create({
        model: "any",
        input: [...input, { role: "assistant", content: first.output_text }, { role: "user", content: "More." }],
        max_output_tokens: 4,
        prompt_cache_key: "c1",
      });
      assert.ok(first.usage!.input_tokens > 50);
      assert.equal(first.usage!.output_tokens, 4);
      assert.ok(second.usage!.input_tokens_details.cached_tokens > 50, JSON.stringify(second.usage));
      assert.equal(second.usage!.total_tokens, second.usage!.input_tokens + second.usage!.output_tokens);
    });
  } finally {
    await worker.stop();
    await router.close();
    await rm(dir, { recursive: true, force: true });
  }
});
