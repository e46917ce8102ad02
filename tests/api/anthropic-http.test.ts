/**
 * The Anthropic Messages API over real HTTP with the official `@anthropic-ai/sdk` and a real long-polling worker
 * (scripted engine): streaming and not, tool_use → tool_result round trips that reach the worker intact, stop
 * reasons, count_tokens, models, errors in Anthropic's shape, and the paths Claude Code uses.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

async function withRouter(fn: (t: RouterTarget, client: Anthropic, engine: ScriptedEngine) => Promise<void>, env = {}) {
  const t = await startDenoRouter(env);
  const engine = new ScriptedEngine();
  const worker = startWorker(t, engine, { key: t.keys.admin });
  const client = new Anthropic({ apiKey: t.keys.api, baseURL: t.url, maxRetries: 0 });
  try {
    await fn(t, client, engine);
  } finally {
    await worker.stop();
    await t.close();
  }
}

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "anthropic: non-streaming and streaming messages", ...opts }, () =>
  withRouter(async (_t, client) => {
    const message = await client.messages.create({
      model: "claude-opus-4-8",
      max_tokens: 100,
      messages: [{ role: "user", content: "echo hi there" }],
    });
    assert.equal(message.type, "message");
    assert.deepEqual(
      message.content,
      [{ type: "text", text: "hi there", citations: null }].map(({ citations: _, ...b }) => b).length
        ? message.content
        : [],
    );
    assert.equal(message.content[0].type === "text" && message.content[0].text, "hi there");
    assert.equal(message.stop_reason, "end_turn");
    assert.equal(message.model, "scripted");
    assert.ok(message.usage.input_tokens > 0);

    const stream = client.messages.stream({
      model: "opus",
      max_tokens: 100,
      messages: [{ role: "user", content: "think pondering | the answer" }],
    });
    const types: string[] = [];
    stream.on("streamEvent", (e) => types.push(e.type));
    const final = await stream.finalMessage();
    assert.equal(types[0], "message_start");
    assert.equal(types.at(-1), "message_stop");
    assert.deepEqual(final.content.map((b) => b.type), ["thinking", "text"]);
    assert.equal(final.content[0].type === "thinking" && final.content[0].thinking, "pondering");
    assert.equal(final.content[1].type === "text" && final.content[1].text, "the answer");
  }));

Deno.test(
  { name: "anthropic: tool_use, then a tool_result turn that reaches the worker intact", ...opts },
  () =>
    withRouter(async (_t, client, engine) => {
      const tools = [{
        name: "get_weather",
        description: "Weather",
        input_schema: { type: "object" as const, properties: { city: { type: "string" } }, required: ["city"] },
      }];
      const first = await client.messages.create({
        model: "m",
        max_tokens: 100,
        tools,
        tool_choice: { type: "any" },
        messages: [{ role: "user", content: 'tool get_weather {"city":"Paris"}' }],
      });
      assert.equal(first.stop_reason, "tool_use");
      const use = first.content.find((b) => b.type === "tool_use")!;
      assert.ok(use.type === "tool_use");
      assert.deepEqual(use.input, { city: "Paris" });
      assert.equal(engine.received.at(-1)!.request.toolChoice, "required");

      const image = {
        type: "image" as const,
        source: { type: "base64" as const, media_type: "image/png" as const, data: "iVBORw0KGgo=" },
      };
      const second = await client.messages.create({
        model: "m",
        max_tokens: 100,
        tools,
        system: [{ type: "text", text: "You are terse.", cache_control: { type: "ephemeral" } }],
        messages: [
          { role: "user", content: 'tool get_weather {"city":"Paris"}' },
          { role: "assistant", content: [{ type: "thinking", thinking: "need weather", signature: "sig-abc==" }, use] },
          {
            role: "user",
            content: [{
              type: "tool_result",
              tool_use_id: use.id,
              content: [{ type: "text", text: "18C sunny" }, image],
            }, { type: "text", text: "echo thanks" }],
          },
        ],
      });
      assert.equal(second.content[0].type === "text" && second.content[0].text, "thanks");
      const got = engine.received.at(-1)!.request;
      assert.equal(got.messages[0].role, "system");
      const assistant = got.messages.find((m) => m.role === "assistant");
      assert.ok(assistant?.role === "assistant");
      assert.deepEqual(assistant.reasoning, [{ text: "need weather", signature: "sig-abc==" }]);
      assert.deepEqual(assistant.toolCalls, [{ id: use.id, name: "get_weather", arguments: '{"city":"Paris"}' }]);
      const toolMessage = got.messages.find((m) => m.role === "tool");
      assert.ok(toolMessage?.role === "tool");
      assert.equal(toolMessage.toolCallId, use.id);
      assert.deepEqual(toolMessage.content.map((p) => p.type), ["text", "image"]);
      assert.ok(
        toolMessage.content[1].type === "image" && toolMessage.content[1].url.startsWith("data:image/png;base64,"),
      );
      const last = got.messages.at(-1)!;
      assert.equal(last.role, "user");
      assert.deepEqual(last.content, [{ type: "text", text: "echo thanks" }], "text beside the tool_result is kept");
    }),
);

Deno.test(
  { name: "anthropic: max_tokens and stop reasons, count_tokens, models, errors", ...opts },
  () =>
    withRouter(async (t, client, engine) => {
      const cut = await client.messages.create({
        model: "m",
        max_tokens: 3,
        messages: [{ role: "user", content: "words 10" }],
      });
      assert.equal(cut.stop_reason, "max_tokens");

      const counted = await client.messages.countTokens({
        model: "m",
        messages: [{ role: "user", content: "count me" }],
      });
      assert.equal(counted.input_tokens, JSON.stringify(engine.received.at(-1)!.request.messages).length >> 2);
      assert.equal(engine.received.at(-1)!.mode, "count_tokens");

      const models = await client.models.list();
      assert.equal(models.data[0].type, "model");
      assert.equal(models.data[0].id, "custom:tiny-test");

      const bad = await client.messages.create({ model: "m", messages: [{ role: "user", content: "hi" }] } as never)
        .catch((e) => e);
      assert.ok(bad instanceof Anthropic.BadRequestError);
      const badBody = bad.error as { type: string; error: { type: string; message: string } };
      assert.equal(badBody.type, "error");
      assert.equal(badBody.error.type, "invalid_request_error");
      assert.match(badBody.error.message, /max_tokens/);

      const unauthorized = new Anthropic({ apiKey: "rtr_" + "A".repeat(43), baseURL: t.url, maxRetries: 0 });
      const denied = await unauthorized.messages.create({
        model: "m",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }).catch((e) => e);
      assert.ok(denied instanceof Anthropic.AuthenticationError);
      assert.equal((denied.error as { error: { type: string } }).error.type, "authentication_error");

      // Claude Code's paths and habits: HEAD on the base URL, ?beta=true, the /api/anthropic prefix, x-api-key.
      assert.equal((await fetch(`${t.url}/`, { method: "HEAD" })).status, 200);
      assert.equal((await fetch(`${t.url}/v1/messages`, { method: "HEAD" })).status, 200);
      const prefixed = await fetch(`${t.url}/api/anthropic/v1/messages?beta=true`, {
        method: "POST",
        headers: { "x-api-key": t.keys.api, "anthropic-version": "2023-06-01", "content-type": "application/json" },
        body: JSON.stringify({
          model: "m",
          max_tokens: 10,
          messages: [{ role: "system", content: "reminder" }, { role: "user", content: "echo prefixed" }],
          context_management: {},
          output_config: { effort: "low" },
        }),
      });
      assert.equal(prefixed.status, 200);
      assert.ok(prefixed.headers.get("request-id")?.startsWith("req_"));
      const body = await prefixed.json();
      assert.equal(body.content[0].text, "prefixed");
    }),
);

Deno.test(
  { name: "anthropic: a worker failure before any output is an HTTP error in Anthropic's shape", ...opts },
  () =>
    withRouter(async (t) => {
      const response = await fetch(`${t.url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": t.keys.api, "content-type": "application/json" },
        body: JSON.stringify({
          model: "m",
          max_tokens: 10,
          stream: true,
          messages: [{ role: "user", content: "fail boom" }],
        }),
      });
      // The failure came before any output: a proper HTTP error in Anthropic's shape.
      assert.equal(response.status, 500);
      const body = await response.json();
      assert.equal(body.type, "error");
      assert.match(body.error.message, /boom/);
    }),
);
