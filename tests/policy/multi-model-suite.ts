/**
 * Routing by model, end to end, on one router target (Deno with either store, or workerd): requests by name and by
 * alias land on a worker serving that model; a model no worker serves is a 503 naming it; /v1/models lists models,
 * aliases and capabilities; embeddings through the official openai SDK.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { directGreedy } from "../helpers/llama-direct.ts";
import type { RouterTarget } from "../helpers/router.ts";
import type { Fleet, ModelFiles } from "./multi-model-fleet.ts";

const PROMPT = "Say something.";
const RENDERED = `<|im_start|>user\n${PROMPT}<|im_end|>\n<|im_start|>assistant\n`;

export async function routingChecks(t: Deno.TestContext, router: RouterTarget, fleet: Fleet, files: ModelFiles) {
  const openai = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
  const anthropic = new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 });
  const bigDirect = await directGreedy(files.big, RENDERED, 8);
  const smallDirect = await directGreedy(files.small, RENDERED, 8);
  assert.notEqual(bigDirect.text, smallDirect.text, "the two models answer differently");

  const chat = async (model: string) => {
    const { data, response } = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: PROMPT }],
      temperature: 0,
      max_tokens: 8,
    }).withResponse();
    const id = response.headers.get("x-request-id")!;
    return { model: data.model, text: data.choices[0].message.content ?? "", ranOn: fleet.ranOn(id) };
  };

  await t.step("requests by model name land on a worker serving that model", async () => {
    for (let i = 0; i < 3; i++) {
      const big = await chat("tiny-big");
      assert.equal(big.model, "custom:tiny-big");
      assert.equal(big.text, bigDirect.text, "tiny-big's own greedy text");
      assert.equal(big.ranOn.length, 1);
      assert.ok(["a", "c"].includes(big.ranOn[0]), `tiny-big ran on ${big.ranOn}`);
      const small = await chat("custom:tiny-small");
      assert.equal(small.model, "custom:tiny-small");
      assert.ok(
        small.text.length > 0 && smallDirect.text.startsWith(small.text),
        `tiny-small's own greedy text: ${JSON.stringify([small.text, smallDirect.text])}`,
      );
      assert.equal(small.ranOn.length, 1);
      assert.ok(["b", "c"].includes(small.ranOn[0]), `tiny-small ran on ${small.ranOn}`);
    }
  });

  await t.step("aliases and unknown names: gpt-*-mini → small, anything else → the default", async () => {
    const mini = await chat("gpt-4o-mini");
    assert.equal(mini.model, "custom:tiny-small");
    assert.ok(["b", "c"].includes(mini.ranOn[0]));
    const other = await chat("gpt-4o");
    assert.equal(other.model, "custom:tiny-big");
    assert.equal(other.text, bigDirect.text);
    assert.ok(["a", "c"].includes(other.ranOn[0]));
  });

  await t.step("Anthropic SDK: claude-haiku-* → tiny-small, claude-opus-* → tiny-big", async () => {
    const haiku = await anthropic.messages.create({
      model: "claude-haiku-4-5-20251001",
      max_tokens: 8,
      messages: [{ role: "user", content: PROMPT }],
    }).withResponse();
    assert.equal(haiku.data.model, "custom:tiny-small");
    const haikuJob = haiku.response.headers.get("x-request-id")!;
    assert.ok(["b", "c"].includes(fleet.ranOn(haikuJob)[0]));
    const opus = await anthropic.messages.create({
      model: "claude-opus-4-8",
      max_tokens: 8,
      messages: [{ role: "user", content: PROMPT }],
    });
    assert.equal(opus.model, "custom:tiny-big");
  });

  await t.step("a model no connected worker serves: 503 at once, naming it, in both API shapes", async () => {
    const started = Date.now();
    const err = await openai.chat.completions.create({
      model: "tiny-none",
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: 4,
    }).catch((e) => e);
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, 503);
    assert.match(err.message, /custom:tiny-none/);
    assert.ok(Date.now() - started < 30_000, "refused without waiting for the 2-minute queue timeout");
    const anthropicErr = await anthropic.messages.create({
      model: "custom:tiny-none",
      max_tokens: 4,
      messages: [{ role: "user", content: PROMPT }],
    }).catch((e) => e);
    assert.ok(anthropicErr instanceof Anthropic.APIError, String(anthropicErr));
    assert.equal(anthropicErr.status, 503);
    assert.match(JSON.stringify(anthropicErr.error), /custom:tiny-none/);
  });

  await t.step("/v1/models: models with capabilities, aliases; Anthropic's list has claude-* ids", async () => {
    const list = await openai.models.list();
    const byId = new Map(list.data.map((m) => [m.id, m as unknown as Record<string, unknown>]));
    assert.deepEqual([...byId.keys()].slice(0, 4), [
      "custom:tiny-big",
      "custom:tiny-small",
      "custom:tiny-none",
      "custom:tiny-embed",
    ]);
    assert.deepEqual(byId.get("custom:tiny-embed")!.capabilities, {
      chat: false,
      tools: false,
      vision: false,
      reasoning: false,
      embeddings: true,
    });
    assert.equal(byId.get("custom:tiny-small")!.context_length, 131_072);
    const anthropicList = await anthropic.models.list();
    const claude = anthropicList.data.filter((m) => m.id.startsWith("claude"));
    assert.deepEqual(
      claude.map((m) => [m.id, m.display_name]),
      [["claude-tiny-big", "custom:tiny-big"], ["claude-tiny-small", "custom:tiny-small"], [
        "claude-tiny-none",
        "custom:tiny-none",
      ]],
    );
    // A listed claude id is served by its model.
    const picked = await anthropic.messages.create({
      model: "claude-tiny-small",
      max_tokens: 4,
      messages: [{ role: "user", content: PROMPT }],
    });
    assert.equal(picked.model, "custom:tiny-small");
  });

  await t.step("/api/status shows queue depth and workers per model", async () => {
    const status = await (await fetch(`${router.url}/api/status`, {
      headers: { authorization: `Bearer ${router.keys.admin}` },
    })).json();
    const models = status.models as { name: string; workers: number; queued: number }[];
    const of = (name: string) => models.find((m) => m.name === name);
    assert.equal(of("custom:tiny-big")?.workers, 2);
    assert.equal(of("custom:tiny-small")?.workers, 2);
    assert.equal(of("custom:tiny-embed")?.workers, 1);
    assert.equal(of("custom:tiny-none")?.workers, 0);
    assert.equal(of("custom:tiny-big")?.queued, 0);
  });
}

export async function embeddingChecks(t: Deno.TestContext, router: RouterTarget, fleet: Fleet) {
  const openai = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });

  await t.step("embeddings: deterministic vectors, right dimension, unit length, usage", async () => {
    const { data: result, response } = await openai.embeddings.create({
      model: "tiny-embed",
      input: ["hello world", "something else", "hello world"],
      encoding_format: "float",
    }).withResponse();
    assert.deepEqual(fleet.ranOn(response.headers.get("x-request-id")!), ["c"]);
    assert.equal(result.object, "list");
    assert.equal(result.model, "custom:tiny-embed");
    assert.deepEqual(result.data.map((d) => d.index), [0, 1, 2]);
    for (const d of result.data) {
      assert.equal(d.embedding.length, 48);
      const norm = Math.sqrt(d.embedding.reduce((s, v) => s + v * v, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `unit length (${norm})`);
    }
    assert.deepEqual(result.data[0].embedding, result.data[2].embedding);
    assert.notDeepEqual(result.data[0].embedding, result.data[1].embedding);
    assert.ok(result.usage.prompt_tokens >= 3);
    assert.equal(result.usage.total_tokens, result.usage.prompt_tokens);
    const again = await openai.embeddings.create({
      model: "tiny-embed",
      input: "hello world",
      encoding_format: "float",
    });
    assert.deepEqual(again.data[0].embedding, result.data[0].embedding, "the same vector in another request");
  });

  await t.step("embeddings: a batch of 64, token-id input, and base64 decoding to the same floats", async () => {
    const inputs = Array.from({ length: 64 }, (_, i) => `input number ${i}`);
    const floats = await openai.embeddings.create({ model: "tiny-embed", input: inputs, encoding_format: "float" });
    assert.equal(floats.data.length, 64);
    // The SDK asks for base64 by default and decodes it itself.
    const viaSdk = await openai.embeddings.create({ model: "tiny-embed", input: inputs });
    assert.deepEqual(viaSdk.data.map((d) => d.embedding), floats.data.map((d) => d.embedding));
    const raw = await (await fetch(`${router.url}/v1/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-embed", input: inputs.slice(0, 2), encoding_format: "base64" }),
    })).json();
    const bytes = Uint8Array.from(atob(raw.data[1].embedding), (c) => c.charCodeAt(0));
    assert.deepEqual(Array.from(new Float32Array(bytes.buffer)), floats.data[1].embedding);
    const tokens = await openai.embeddings.create({
      model: "tiny-embed",
      input: [[104, 105], [104, 105]],
      encoding_format: "float",
    });
    assert.equal(tokens.data[0].embedding.length, 48);
    assert.deepEqual(tokens.data[0].embedding, tokens.data[1].embedding);
  });

  await t.step("embeddings: `dimensions` cuts a Matryoshka model's vector and normalises it again", async () => {
    const full = await openai.embeddings.create({ model: "tiny-embed", input: "cut me", encoding_format: "float" });
    const cut = await openai.embeddings.create({
      model: "tiny-embed",
      input: "cut me",
      dimensions: 16,
      encoding_format: "float",
    });
    const head = full.data[0].embedding.slice(0, 16);
    const norm = Math.sqrt(head.reduce((s, v) => s + v * v, 0));
    assert.equal(cut.data[0].embedding.length, 16);
    cut.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - head[i] / norm) < 1e-6, `value ${i}`));
  });

  await t.step("embeddings: clear 400s (dimensions the model cannot give, a chat model, empty input)", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ model: "tiny-embed", input: "x", dimensions: 4 }, /8 to 48 dimensions, not 4/],
      [{ model: "tiny-embed", input: "x", dimensions: 64 }, /48 dimensions; 64 is more/],
      [{ model: "tiny-big", input: "x" }, /chat model, not an embedding model/],
      [{ model: "tiny-embed", input: [] }, /input/],
    ];
    for (const [body, pattern] of cases) {
      const err = await openai.embeddings.create(body as never).catch((e) => e);
      assert.ok(err instanceof OpenAI.APIError, String(err));
      assert.equal(err.status, 400, `${JSON.stringify(body)}: ${err.message}`);
      assert.match(err.message, pattern);
    }
    // A chat request naming the embedding model is refused too.
    const chatErr = await openai.chat.completions.create({
      model: "tiny-embed",
      messages: [{ role: "user", content: "x" }],
    }).catch((e) => e);
    assert.equal(chatErr.status, 400);
    assert.match(chatErr.message, /embedding model/);
  });
}
