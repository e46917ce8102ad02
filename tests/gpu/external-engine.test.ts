/**
 * External engine mode: a real worker loop forwarding jobs to an OpenAI-compatible server (the mock engine),
 * behind a real router, called with the official openai client.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { ExternalEngine } from "../../workers/gpu/external-engine.ts";
import { startMockOpenAI } from "../fixtures/mock-openai.ts";
import { startDenoRouter, startWorker } from "../helpers/router.ts";

Deno.test({
  name: "external engine: streaming, non-streaming, tool calls and options relayed",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const mock = startMockOpenAI({ tokens: 6 });
  const router = await startDenoRouter();
  const worker = startWorker(router, new ExternalEngine({ url: mock.url, slots: 2, model: "engine-model" }), {
    key: router.keys.admin,
  });
  try {
    const client = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    const whole = await client.chat.completions.create({
      model: "x",
      messages: [{ role: "user", content: "hi" }],
      temperature: 0,
      seed: 7,
    });
    assert.equal(whole.choices[0].message.content, "tok0 tok1 tok2 tok3 tok4 tok5 ");
    assert.equal(whole.usage?.completion_tokens, 6);
    assert.equal(mock.received[0].model, "engine-model");
    assert.equal(mock.received[0].temperature, 0);
    assert.equal(mock.received[0].seed, 7);
    // The caller waits for the whole answer: so does the worker (one JSON body, not a chunk per token).
    assert.equal(mock.received[0].stream, false);

    const stream = await client.chat.completions.create({
      model: "x",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      max_tokens: 3,
    });
    let text = "", finish;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, "tok0 tok1 tok2 ");
    assert.equal(finish, "length");
    assert.equal(mock.received[1].stream, true);

    const tools = [{ type: "function" as const, function: { name: "lookup", parameters: { type: "object" } } }];
    const call = await client.chat.completions.create({
      model: "x",
      messages: [{ role: "user", content: "hi" }],
      tools,
      tool_choice: "required",
    });
    assert.equal(call.choices[0].finish_reason, "tool_calls");
    assert.equal((call.choices[0].message.tool_calls![0] as { function: { name: string } }).function.name, "lookup");
    assert.deepEqual(mock.received.at(-1)!.tool_choice, "required");
  } finally {
    await worker.stop();
    await router.close();
    await mock.close();
  }
});

Deno.test({
  name: "external engine: a server that streams although asked not to is still read whole",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const frames = [
    { choices: [{ index: 0, delta: { content: "a " } }] },
    { choices: [{ index: 0, delta: { content: "b" }, finish_reason: "stop" }] },
  ];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    await request.body?.cancel();
    const sse = frames.map((f) => `data: ${JSON.stringify(f)}\n\n`).join("") + "data: [DONE]\n\n";
    return new Response(sse, { headers: { "content-type": "text/event-stream" } });
  });
  const router = await startDenoRouter();
  const worker = startWorker(
    router,
    new ExternalEngine({ url: `http://127.0.0.1:${server.addr.port}`, slots: 1, model: "m" }),
    { key: router.keys.admin },
  );
  try {
    const client = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    const whole = await client.chat.completions.create({ model: "x", messages: [{ role: "user", content: "hi" }] });
    assert.equal(whole.choices[0].message.content, "a b");
    assert.equal(whole.choices[0].finish_reason, "stop");
  } finally {
    await worker.stop();
    await router.close();
    await server.shutdown();
  }
});
