/**
 * Real inference end to end: the GPU worker as its own process (`workers/gpu/main.ts --model-path tiny.gguf`, real
 * node-llama-cpp, 1 thread) behind a real router, called with the official openai and Anthropic clients. The
 * reference text comes from node-llama-cpp directly, with nothing of ours in between.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { directGreedy } from "../helpers/llama-direct.ts";
import { eventually, startDenoRouter } from "../helpers/router.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SYSTEM = "You are terse.";

Deno.test(
  { name: "GPU worker on the tiny model behind the router", sanitizeOps: false, sanitizeResources: false },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "auxot-gpu-e2e-"));
    const modelPath = join(dir, "tiny.gguf");
    await writeTinyGguf(modelPath);
    const router = await startDenoRouter({ AUXOT_CTX_SIZE: "1024", AUXOT_MAX_PARALLEL: "2" });
    const worker = spawnGpuWorker(router, modelPath);
    const openai = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    const health = async () => await (await fetch(`${router.url}/health`)).json();
    try {
      await eventually(async () => (await health()).workers.ready === 1, 60_000, "the worker to load the model");

      await t.step("streamed text equals node-llama-cpp's own greedy generation, token for token", async () => {
        const stream = await openai.chat.completions.create({
          model: "tiny",
          messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "Say something." }],
          temperature: 0,
          max_tokens: 40,
          stream: true,
          stream_options: { include_usage: true },
        });
        const pieces: string[] = [];
        let finish, usage;
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
          finish = chunk.choices[0]?.finish_reason ?? finish;
          usage = chunk.usage ?? usage;
        }
        const prompt =
          `<|im_start|>system\n${SYSTEM}<|im_end|>\n<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n`;
        const direct = await directGreedy(modelPath, prompt, 40);
        assert.equal(pieces.join(""), direct.text);
        assert.ok(pieces.length > 5, "streamed in many chunks");
        assert.equal(finish, "length");
        assert.equal(usage?.completion_tokens, 40);
        assert.equal(usage?.prompt_tokens, direct.promptTokens);
      });

      await t.step("two requests run at once in two slots; a third waits; a cancel frees its slot", async () => {
        const long = (signal?: AbortSignal) =>
          fetch(`${router.url}/v1/chat/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
            body: JSON.stringify({
              model: "t",
              stream: true,
              max_tokens: 900,
              temperature: 0,
              messages: [{ role: "user", content: "Go on." }],
            }),
            signal,
          });
        const controllers = [new AbortController(), new AbortController(), new AbortController()];
        const responses = controllers.map((c) => long(c.signal));
        const busy = await eventually(
          async () => {
            const h = await health();
            return h.slots.free === 0 && h.queue.depth === 1 ? h : undefined;
          },
          20_000,
          "two running and one queued",
        );
        assert.equal(busy.running, 2);
        for (const c of controllers) c.abort();
        await Promise.allSettled(responses);
        await eventually(
          async () => {
            const h = await health();
            return h.slots.free === 2 && h.queue.depth === 0 && h.running === 0;
          },
          20_000,
          "the slots to be freed after the cancels",
        );
      });

      await t.step("tool_choice required yields arguments valid against the schema", async () => {
        const tools = [{
          type: "function" as const,
          function: {
            name: "set_alarm",
            parameters: {
              type: "object",
              properties: {
                hour: { type: "integer" },
                repeat: { enum: ["daily", "once"] },
                label: { type: "string", maxLength: 12 },
              },
              required: ["hour", "label", "repeat"],
              additionalProperties: false,
            },
          },
        }];
        const completion = await openai.chat.completions.create({
          model: "t",
          messages: [{ role: "user", content: "Wake me." }],
          tools,
          tool_choice: "required",
          temperature: 0,
          max_tokens: 200,
        });
        assert.equal(completion.choices[0].finish_reason, "tool_calls");
        const call = completion.choices[0].message.tool_calls![0] as { function: { name: string; arguments: string } };
        assert.equal(call.function.name, "set_alarm");
        const args = JSON.parse(call.function.arguments);
        // Types, required keys, enums and lengths are what a grammar enforces (numeric bounds it cannot).
        assert.deepEqual(Object.keys(args).sort(), ["hour", "label", "repeat"], call.function.arguments);
        assert.ok(Number.isInteger(args.hour), call.function.arguments);
        assert.ok(["daily", "once"].includes(args.repeat));
        assert.ok(typeof args.label === "string" && args.label.length <= 12);
      });

      await t.step("response_format json_schema yields valid JSON", async () => {
        const completion = await openai.chat.completions.create({
          model: "t",
          messages: [{ role: "user", content: "Describe a cat." }],
          response_format: {
            type: "json_schema",
            json_schema: {
              name: "cat",
              schema: {
                type: "object",
                properties: {
                  name: { type: "string", maxLength: 10 },
                  legs: { type: "integer", minimum: 0, maximum: 4 },
                },
                required: ["name", "legs"],
              },
            },
          },
          temperature: 0,
          max_tokens: 200,
        });
        const value = JSON.parse(completion.choices[0].message.content!);
        assert.equal(typeof value.name, "string");
        assert.ok(Number.isInteger(value.legs));
      });

      await t.step("a follow-up turn reuses the KV cache (cached tokens > 0)", async () => {
        const first = [{ role: "system" as const, content: SYSTEM }, {
          role: "user" as const,
          content: "Tell me a long story about the sea.",
        }];
        const a = await openai.chat.completions.create({ model: "t", messages: first, temperature: 0, max_tokens: 20 });
        const followUp = [...first, { role: "assistant" as const, content: a.choices[0].message.content! }, {
          role: "user" as const,
          content: "And then?",
        }];
        const b = await openai.chat.completions.create({
          model: "t",
          messages: followUp,
          temperature: 0,
          max_tokens: 5,
        });
        assert.ok((b.usage?.prompt_tokens_details?.cached_tokens ?? 0) > 0, JSON.stringify(b.usage));
      });

      await t.step(
        "Anthropic SDK: streaming, max_tokens, stop sequence, count_tokens equals the tokenizer count",
        async () => {
          const anthropic = new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 });
          const body = {
            model: "claude-opus-4-8",
            system: SYSTEM,
            messages: [{ role: "user" as const, content: "Say something." }],
            temperature: 0,
          };
          const streamed = await anthropic.messages.stream({ ...body, max_tokens: 40 }).finalMessage();
          assert.equal(streamed.stop_reason, "max_tokens");
          const text = streamed.content[0].type === "text" ? streamed.content[0].text : "";
          assert.ok(text.length > 0);
          const counted = await anthropic.messages.countTokens(body);
          assert.equal(
            counted.input_tokens,
            streamed.usage.input_tokens + (streamed.usage.cache_read_input_tokens ?? 0),
          );
          const stop = text.slice(10, 14);
          const stopped = await anthropic.messages.create({ ...body, max_tokens: 40, stop_sequences: [stop] });
          assert.equal(stopped.stop_reason, "stop_sequence");
          assert.equal(stopped.stop_sequence, stop);
        },
      );
    } finally {
      const code = await worker.stop();
      await router.close();
      await rm(dir, { recursive: true, force: true });
      assert.equal(code, 0, `the worker exits cleanly on SIGTERM\n${worker.stderr.slice(-20).join("\n")}`);
    }
  },
);

Deno.test({
  name: "GPU worker exits with a clear message without a router URL, or on a rejected key",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "workers/gpu/main.ts"), ...args],
      env: { AUXOT_ROUTER_URL: "", AUXOT_GPU_KEY: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const noUrl = await run(["--gpu-key", "adm_x"]);
  assert.equal(noUrl.code, 2);
  assert.match(noUrl.stderr, /--router-url/);
  const router = await startDenoRouter();
  try {
    const rejected = await run([
      "--gpu-key",
      router.keys.admin.slice(0, -4) + "AAAA",
      "--router-url",
      router.url,
      "--model-path",
      join(ROOT, "package.json"), // any existing file: the key is refused before a model is loaded
    ]);
    assert.equal(rejected.code, 1);
    assert.match(rejected.stderr, /refused/);
  } finally {
    await router.close();
  }
});
