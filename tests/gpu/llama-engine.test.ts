/**
 * The llama engine on real node-llama-cpp with the generated tiny model (1 thread): greedy text equals direct
 * node-llama-cpp generation token for token, two slots run concurrently, cancel stops and frees the slot, grammars
 * give valid JSON and forced tool calls, limits (maxTokens, stop sequences, context size) end jobs with the right
 * reason, and a follow-up turn reuses the previous turn's KV cache.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatRequest, type ChatRequestInput } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import { ChatJob, type Policy } from "../../src/protocol/worker-protocol.ts";
import { LlamaEngine } from "../../workers/gpu/llama-engine.ts";
import { TINY_CHAT_TEMPLATE, writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { directGreedy } from "../helpers/llama-direct.ts";

const POLICY: Policy = { version: "v1", engine: "llama", model: { name: "tiny-test" }, ctxSize: 1024, maxParallel: 2 };
const SYSTEM = "You are terse.";
const text = (value: string) => [{ type: "text" as const, text: value }];
const userTurn = (value: string) => ({ role: "user" as const, content: text(value) });

let jobCounter = 0;
function chatJob(request: Omit<ChatRequestInput, "requestedModel">, mode?: "count_tokens"): ChatJob {
  return ChatJob.parse({
    id: `job-${++jobCounter}`,
    kind: "chat",
    request: ChatRequest.parse({ requestedModel: "tiny-test", ...request }),
    attempt: 1,
    deadlineMs: 60_000,
    ...(mode ? { mode } : {}),
  });
}

/** Runs a job to its end and collects its events; `onEvent` may abort. */
async function runJob(
  engine: LlamaEngine,
  job: ChatJob,
  onEvent?: (event: JobEvent, abort: () => void) => void,
): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  const controller = new AbortController();
  await engine.run(job, {
    emit(event) {
      events.push(event);
      onEvent?.(event, () => controller.abort());
    },
  }, controller.signal);
  return events;
}

const textOf = (events: JobEvent[], type: "text" | "reasoning" = "text") =>
  events.map((event) => event.type === type ? event.text : "").join("");
const terminal = (events: JobEvent[]) => events.at(-1);
const errorCode = (events: JobEvent[]) => {
  const last = events.at(-1);
  return last?.type === "error" ? last.code : undefined;
};
const usageOf = (events: JobEvent[]) => {
  const usage = events.find((event) => event.type === "usage");
  assert.ok(usage?.type === "usage", "no usage event");
  return usage.usage;
};

Deno.test("llama engine on the tiny model", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-llama-engine-"));
  const modelPath = join(dir, "tiny.gguf");
  await writeTinyGguf(modelPath);
  const engine = new LlamaEngine({ modelPath, threads: 1 });
  try {
    const loaded = await engine.applyPolicy(POLICY);
    assert.deepEqual(loaded, {
      policyVersion: "v1",
      model: "tiny-test",
      quantization: "F16",
      ctxSize: 1024,
      parallel: 2,
    });
    assert.equal(engine.slots(), 2);
    assert.deepEqual(await engine.applyPolicy({ ...POLICY, version: "v2" }), { ...loaded, policyVersion: "v2" });

    const greedy = (question: string, maxTokens: number, extra: Partial<ChatRequestInput> = {}) =>
      chatJob({
        messages: [{ role: "system", content: text(SYSTEM) }, userTurn(question)],
        maxTokens,
        temperature: 0,
        ...extra,
      });

    let reference = "";
    await t.step("greedy text equals direct node-llama-cpp generation; maxTokens ends with length", async () => {
      const events = await runJob(engine, greedy("Say something.", 40));
      const prompt = `<|im_start|>system\n${SYSTEM}<|im_end|>\n<|im_start|>user\nSay something.<|im_end|>\n` +
        "<|im_start|>assistant\n";
      const direct = await directGreedy(modelPath, prompt, 40);
      assert.deepEqual(events[0], { type: "start", model: "tiny-test", promptTokens: direct.promptTokens });
      reference = textOf(events);
      assert.equal(reference, direct.text);
      assert.equal(usageOf(events).completionTokens, 40);
      assert.deepEqual(terminal(events), { type: "done", finishReason: "length" });
      assert.ok(/^[\x20-\x7e]+$/.test(reference), "the tiny model emits printable ASCII only");
    });

    await t.step("a stop sequence ends the text before it", async () => {
      const stop = reference.slice(15, 19);
      const events = await runJob(engine, greedy("Say something.", 40, { stop: [stop] }));
      assert.equal(textOf(events), reference.slice(0, reference.indexOf(stop)));
      assert.deepEqual(terminal(events), { type: "done", finishReason: "stop_sequence", stopSequence: stop });
    });

    await t.step("two jobs run at once in two slots, each as it would alone", async () => {
      const alone = textOf(await runJob(engine, greedy("Another question?", 30)));
      const [first, second] = await Promise.all([
        runJob(engine, greedy("Say something.", 40)),
        runJob(engine, greedy("Another question?", 30)),
      ]);
      assert.equal(textOf(first), reference);
      assert.equal(textOf(second), alone);
    });

    await t.step("seeded sampling repeats itself", async () => {
      const sampled = () => runJob(engine, greedy("Pick words.", 30, { temperature: 1, seed: 7, topK: 20 }));
      assert.equal(textOf(await sampled()), textOf(await sampled()));
    });

    await t.step("cancel stops within a few tokens and frees the slot", async () => {
      let texts = 0;
      let textsAfterAbort = 0;
      let aborted = false;
      const events = await runJob(engine, greedy("Go on forever.", 500), (event, abort) => {
        if (event.type !== "text") return;
        if (aborted) textsAfterAbort++;
        else if (++texts >= 5) {
          aborted = true;
          abort();
        }
      });
      assert.ok(aborted);
      assert.ok(textsAfterAbort <= 2, `${textsAfterAbort} tokens after the abort`);
      assert.deepEqual(terminal(events), {
        type: "error",
        code: "cancelled",
        message: "the job was cancelled",
        retryable: false,
      });
      // Both slots are free again: two jobs can start together.
      const both = await Promise.all([runJob(engine, greedy("a", 3)), runJob(engine, greedy("b", 3))]);
      for (const result of both) assert.equal(terminal(result)?.type, "done");
    });

    await t.step("a follow-up turn reuses the previous turn's cache", async () => {
      const first = await runJob(engine, greedy("Remember this.", 20, { conversationKey: "conv-1" }));
      assert.ok(engine.describe().cachedConversations?.includes("conv-1"));
      const answer = textOf(first);
      const followUp = chatJob({
        messages: [
          { role: "system", content: text(SYSTEM) },
          userTurn("Remember this."),
          { role: "assistant", content: text(answer) },
          userTurn("And now?"),
        ],
        maxTokens: 5,
        temperature: 0,
        conversationKey: "conv-1",
      });
      const events = await runJob(engine, followUp);
      const firstPrompt = usageOf(first).promptTokens;
      assert.ok(usageOf(events).cachedTokens >= firstPrompt, `cached ${usageOf(events).cachedTokens}`);
      assert.equal(terminal(events)?.type, "done");
    });

    await t.step("json_schema output is valid JSON of that schema", async () => {
      const schema = {
        type: "object",
        properties: { name: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] } },
        required: ["name", "unit"],
      };
      const events = await runJob(
        engine,
        greedy("Give JSON.", 200, { responseFormat: { type: "json_schema", schema } }),
      );
      const value = JSON.parse(textOf(events));
      assert.equal(typeof value.name, "string");
      assert.ok(value.name.length <= 12 && ["c", "f"].includes(value.unit), textOf(events));
      assert.deepEqual(terminal(events), { type: "done", finishReason: "stop" });
    });

    const tools = [
      {
        name: "get_weather",
        description: "Current weather",
        parameters: {
          type: "object",
          properties: { city: { type: "string", maxLength: 16 }, unit: { enum: ["c", "f"] } },
          required: ["city", "unit"],
        },
      },
      { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", maxLength: 8 } } } },
    ];
    await t.step("toolChoice required forces a valid call, streamed as tool_call then tool_args", async () => {
      for (const toolChoice of ["required", { name: "get_time" }] as const) {
        const events = await runJob(engine, greedy("Weather?", 200, { tools, toolChoice }));
        const call = events.find((event) => event.type === "tool_call");
        assert.ok(call?.type === "tool_call", JSON.stringify(events));
        assert.equal(call.index, 0);
        assert.ok(call.id.length > 8);
        if (typeof toolChoice === "object") assert.equal(call.name, "get_time");
        const args = JSON.parse(events.map((event) => event.type === "tool_args" ? event.delta : "").join(""));
        if (call.name === "get_weather") {
          assert.ok(typeof args.city === "string" && args.city.length <= 16 && ["c", "f"].includes(args.unit));
        } else assert.ok(args.zone === undefined || (typeof args.zone === "string" && args.zone.length <= 8));
        assert.equal(textOf(events), "");
        assert.deepEqual(terminal(events), { type: "done", finishReason: "tool_calls" });
      }
    });

    await t.step("count_tokens, oversized prompts and unknown tools end without generating", async () => {
      const counted = await runJob(engine, chatJob({ messages: [userTurn("Hi")] }, "count_tokens"));
      assert.equal(counted.length, 2);
      assert.equal(counted[0].type, "start");
      assert.deepEqual(counted[1], { type: "done", finishReason: "stop" });
      const thinkingOff = await runJob(
        engine,
        chatJob({ messages: [userTurn("Hi")], reasoning: { enabled: false } }, "count_tokens"),
      );
      const promptTokens = (events: JobEvent[]) => events[0].type === "start" ? events[0].promptTokens ?? 0 : 0;
      assert.ok(promptTokens(thinkingOff) > promptTokens(counted), "enable_thinking=false adds an empty think block");

      const huge = await runJob(engine, chatJob({ messages: [userTurn("word ".repeat(1500))] }));
      assert.equal(errorCode(huge), "context_length_exceeded");
      const unknown = await runJob(engine, chatJob({ messages: [userTurn("x")], tools, toolChoice: { name: "nope" } }));
      assert.equal(errorCode(unknown), "invalid_request");
    });

    await t.step("other sizes reload the context; ctx is capped at the trained length", async () => {
      const smaller = await engine.applyPolicy({ ...POLICY, version: "v3", ctxSize: 512, maxParallel: 1 });
      assert.equal(smaller?.parallel, 1);
      assert.equal(engine.slots(), 1);
      const capped = await engine.applyPolicy({ ...POLICY, version: "v4", ctxSize: 100_000 });
      assert.equal(capped?.ctxSize, 4096);
      assert.match(capped?.note ?? "", /ctx lowered to 4096/);
      const events = await runJob(engine, greedy("Say something.", 40));
      assert.equal(textOf(events), reference);
    });

    await t.step("tokens/s and hardware are described", () => {
      const info = engine.describe();
      assert.equal(info.hardware?.backend, "cpu");
      assert.ok((info.tokensPerSecond ?? 0) > 0);
    });
  } finally {
    await engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("a template that opens <think> makes the output reasoning", async () => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-llama-think-"));
  const modelPath = join(dir, "thinking.gguf");
  const opensThink = TINY_CHAT_TEMPLATE.replace(
    "'<|im_start|>assistant\\n' }}\n{%- if enable",
    "'<|im_start|>assistant\\n<think>\\n' }}\n{%- if enable",
  );
  assert.notEqual(opensThink, TINY_CHAT_TEMPLATE);
  await writeTinyGguf(modelPath, { chatTemplate: opensThink });
  const engine = new LlamaEngine({ modelPath, threads: 1 });
  try {
    await engine.applyPolicy({ ...POLICY, maxParallel: 1 });
    const events = await runJob(engine, chatJob({ messages: [userTurn("Think.")], maxTokens: 20, temperature: 0 }));
    assert.ok(textOf(events, "reasoning").length > 0);
    assert.equal(textOf(events), "");
    // Every generated token was reasoning (the Responses API reports them as reasoning_tokens).
    assert.equal(usageOf(events)?.reasoningTokens, usageOf(events)?.completionTokens);
    assert.deepEqual(terminal(events), { type: "done", finishReason: "length" });
  } finally {
    await engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
