/**
 * The llama engine resuming an answer (a continuation job) on real node-llama-cpp with the tiny model: with the lost
 * worker's tokens and greedy sampling, the joined text equals the uninterrupted text token for token, wherever the
 * answer was cut (including inside a held-back stop-sequence prefix); with text only it resumes without repeating;
 * maxTokens counts the tokens generated before the cut; a grammar-constrained answer refuses to resume.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatRequest, type ChatRequestInput } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import { ChatJob, type Continuation, type Policy } from "../../src/protocol/worker-protocol.ts";
import { LlamaEngine } from "../../workers/gpu/llama-engine.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";

const POLICY: Policy = { version: "v1", engine: "llama", model: { name: "tiny-test" }, ctxSize: 2048, maxParallel: 1 };

function job(request: Omit<ChatRequestInput, "requestedModel">, continuation?: Continuation): ChatJob {
  return ChatJob.parse({
    id: `job-${crypto.randomUUID().slice(0, 8)}`,
    kind: "chat",
    request: ChatRequest.parse({ requestedModel: "tiny-test", ...request }),
    attempt: 1,
    deadlineMs: 60_000,
    ...(continuation ? { continuation } : {}),
  });
}

async function run(engine: LlamaEngine, j: ChatJob): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  await engine.run(j, { emit: (event) => events.push(event) }, new AbortController().signal);
  return events;
}

const textOf = (events: JobEvent[]) => events.map((e) => e.type === "text" ? e.text : "").join("");

/** What a router would hand on after the first `n` text events reached the caller. */
function cutAfter(events: JobEvent[], n: number, withTokens = true): Continuation {
  const sent = events.filter((e) => e.type === "text").slice(0, n) as Extract<JobEvent, { type: "text" }>[];
  const tokens = sent.flatMap((e) => e.tokens ?? []);
  return {
    version: 1,
    count: 1,
    policyVersion: POLICY.version,
    text: sent.map((e) => e.text).join(""),
    reasoning: "",
    ...(withTokens ? { tokens } : {}),
    completionTokens: tokens.length,
  };
}

Deno.test("llama engine: continuations", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-continuation-"));
  const modelPath = join(dir, "tiny.gguf");
  await writeTinyGguf(modelPath);
  const engine = new LlamaEngine({ modelPath, threads: 1 });
  try {
    await engine.applyPolicy(POLICY);
    const request = {
      messages: [{ role: "user" as const, content: [{ type: "text" as const, text: "Tell me a story." }] }],
      temperature: 0,
      maxTokens: 300,
    };
    const whole = await run(engine, job(request));
    const reference = textOf(whole);
    const texts = whole.filter((e) => e.type === "text");
    assert.ok(texts.length > 50 && texts.every((e) => e.type === "text" && e.tokens && e.tokens.length > 0));

    await t.step(
      "greedy, with tokens: the joined answer equals the uninterrupted one, wherever it is cut",
      async () => {
        for (const n of [1, 7, 60, texts.length - 2]) {
          const continuation = cutAfter(whole, n);
          const resumed = await run(engine, job(request, continuation));
          assert.deepEqual(resumed[0], {
            type: "start",
            model: "tiny-test",
            promptTokens: (whole[0] as { promptTokens: number }).promptTokens + continuation.tokens!.length,
            continued: true,
          });
          assert.equal(continuation.text + textOf(resumed), reference, `cut after ${n} text events`);
          const usage = resumed.find((e) => e.type === "usage");
          assert.ok(usage?.type === "usage");
          assert.equal(usage.usage.completionTokens, 300 - continuation.completionTokens, "maxTokens counts both");
          assert.deepEqual(resumed.at(-1), { type: "done", finishReason: "length" });
        }
      },
    );

    await t.step("a cut inside a held-back stop-sequence prefix sends the held text once", async () => {
      // A stop sequence that never matches but whose first character is common holds text back now and then.
      const stopRequest = { ...request, stop: [`${reference[40]}\u0001`] };
      const stopped = await run(engine, job(stopRequest));
      const full = textOf(stopped);
      assert.equal(full, reference);
      // Where the stopped run's events first differ from the plain run's, the matcher held text back: cut there.
      const stoppedTexts = stopped.filter((e) => e.type === "text") as Extract<JobEvent, { type: "text" }>[];
      const held = stoppedTexts.findIndex((e, i) => e.text !== (texts[i] as { text: string }).text);
      assert.ok(held >= 0, "the stop-sequence prefix held some text back");
      for (const n of [held + 1, held + 2]) {
        const continuation = cutAfter(stopped, n);
        assert.equal(continuation.text + textOf(await run(engine, job(stopRequest, continuation))), full, `cut ${n}`);
      }
    });

    await t.step("text only (a worker that sent no tokens): resumes after the text, without repeating it", async () => {
      const continuation = cutAfter(whole, 20, false);
      const resumed = await run(engine, job(request, continuation));
      assert.equal((resumed[0] as { continued?: boolean }).continued, true);
      assert.ok(textOf(resumed).length > 0);
      assert.ok(!textOf(resumed).startsWith(continuation.text), "the text so far is not sent again");
    });

    await t.step(
      "a long prompt reports its evaluation as it goes (progress events before the first token)",
      async () => {
        const long = "The quick brown fox jumps over the lazy dog. ".repeat(150);
        const events = await run(
          engine,
          job({ ...request, maxTokens: 5, messages: [{ role: "user", content: [{ type: "text", text: long }] }] }),
        );
        const start = events[0];
        assert.ok(start.type === "start" && start.promptTokens! > 1_200, `a long prompt (${JSON.stringify(start)})`);
        const firstText = events.findIndex((e) => e.type === "text");
        const prefill = events.slice(0, firstText).filter((e) => e.type === "progress" && e.phase === "prefill");
        assert.ok(prefill.length >= 1, "progress during the prompt evaluation");
        const done = prefill.map((e) => e.type === "progress" ? e.promptTokensDone! : 0);
        assert.deepEqual(done, [...done].sort((a, b) => a - b), "progress only grows");
        assert.ok(done.every((n) => n < start.promptTokens!));
      },
    );

    await t.step("a grammar-constrained answer refuses to resume", async () => {
      const events = await run(
        engine,
        job({ ...request, responseFormat: { type: "json_object" } }, cutAfter(whole, 3)),
      );
      const last = events.at(-1);
      assert.ok(last?.type === "error" && last.code === "continuation_unsupported");
    });
  } finally {
    await engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
