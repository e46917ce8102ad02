/**
 * Limits worded as Anthropic words them, through the official SDK against a real GPU worker on a tiny model with a
 * 512-token context: a prompt over the context is a 400 invalid_request_error reading
 * `prompt is too long: N tokens > M maximum` (the wording Claude Code parses to compact), streamed or not; a
 * max_tokens larger than what is left of the context is honoured up to the context's end, not refused, and ends with
 * stop_reason `model_context_window_exceeded`.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { eventually, startDenoRouter } from "../helpers/router.ts";

/** Claude Code's own pattern (from its binary): the numbers it compacts by. */
const CLAUDE_CODE_TOO_LONG = /prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)/i;

Deno.test({
  name: "context overflow is Anthropic's 400 'prompt is too long: N tokens > M maximum'",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-limits-"));
  const modelPath = join(dir, "tiny.gguf");
  // No EOS bias: the model never ends a turn by itself, so an answer runs to max_tokens or the context's end.
  await writeTinyGguf(modelPath, { ctx: 512, layers: 1, nEmbd: 32, heads: 2 });
  const router = await startDenoRouter({ AUXOT_CTX_SIZE: "512", AUXOT_MAX_PARALLEL: "1" });
  const worker = spawnGpuWorker(router, modelPath);
  const client = new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 });
  const long = Array.from({ length: 600 }, (_, i) => `word${i}`).join(" ");
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      60_000,
      "the worker",
    );
    const { input_tokens: counted } = await client.messages.countTokens({
      model: "claude-sonnet-5",
      messages: [{ role: "user", content: long }],
    });
    assert.ok(counted > 512, `the prompt is over the context (${counted} tokens)`);

    for (const stream of [false, true]) {
      await t.step(stream ? "streaming" : "non-streaming", async () => {
        const error = await client.messages.create({
          model: "claude-sonnet-5",
          max_tokens: 64,
          messages: [{ role: "user", content: long }],
          stream,
        }).catch((e) => e);
        assert.ok(error instanceof Anthropic.BadRequestError, String(error));
        assert.equal(error.status, 400);
        const body = error.error as { type: string; error: { type: string; message: string } };
        assert.equal(body.type, "error");
        assert.equal(body.error.type, "invalid_request_error");
        assert.equal(body.error.message, `prompt is too long: ${counted} tokens > 511 maximum`);
        const [, actual, limit] = CLAUDE_CODE_TOO_LONG.exec(body.error.message)!.map(Number);
        assert.ok(actual > limit, "Claude Code reads a positive excess");
      });
    }

    await t.step("max_tokens beyond the remaining context: answered up to the context's end", async () => {
      // The SDK insists on streaming for a max_tokens this large.
      const message = await client.messages.stream({
        model: "claude-sonnet-5",
        max_tokens: 64_000,
        messages: [{ role: "user", content: "Hello" }],
      }).finalMessage();
      assert.ok(message.usage.output_tokens > 0);
      assert.ok(message.usage.input_tokens + message.usage.output_tokens <= 512);
      // Anthropic's stop reason for this (current models), which Claude Code reports as the context limit.
      assert.equal(message.stop_reason, "model_context_window_exceeded");
      const capped = await client.messages.create({
        model: "claude-sonnet-5",
        max_tokens: 5,
        messages: [{ role: "user", content: "Hello" }],
      });
      assert.equal(capped.stop_reason, "max_tokens", "the request's own max_tokens is still max_tokens");
    });
  } finally {
    await worker.stop();
    await router.close();
    await rm(dir, { recursive: true, force: true });
  }
});
