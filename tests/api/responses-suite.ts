/**
 * The Responses API over real HTTP with the official `openai` client (`responses.create`, `responses.stream`,
 * `responses.parse`) and raw fetch, against real long-polling workers (scripted engine: the instruction in the last
 * user message decides the answer, see tests/helpers/scripted-engine.ts). The same suite runs against the router
 * under Deno (responses-deno.test.ts) and under workerd (responses-workerd.test.ts).
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import type { MakeTarget, RouterTarget } from "../helpers/router.ts";
import { startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

const weather = {
  type: "function" as const,
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  strict: false,
};

/** Codex's `apply_patch` grammar, as Codex 0.171.0 declares it (taken from its binary). */
export const APPLY_PATCH_LARK = `start: begin_patch hunk+ end_patch
begin_patch: "*** Begin Patch" LF
end_patch: "*** End Patch" LF?

hunk: add_hunk | delete_hunk | update_hunk
add_hunk: "*** Add File: " filename LF add_line+
delete_hunk: "*** Delete File: " filename LF
update_hunk: "*** Update File: " filename LF change_move? change?

filename: /(.+)/
add_line: "+" /(.*)/ LF -> line

change_move: "*** Move to: " filename LF
change: (change_context | change_line)+ eof_line?
change_context: ("@@" | "@@ " /(.+)/) LF
change_line: ("+" | "-" | " ") /(.*)/ LF
eof_line: "*** End of File" LF

%import common.LF
`;

export const applyPatchTool = {
  type: "custom" as const,
  name: "apply_patch",
  description: "Edit files with a patch.",
  format: { type: "grammar" as const, syntax: "lark" as const, definition: APPLY_PATCH_LARK },
};

export function responsesSuite(name: string, makeTarget: MakeTarget): void {
  const test = (title: string, fn: (t: RouterTarget, client: OpenAI, engine: ScriptedEngine) => Promise<void>) =>
    Deno.test({ name: `${name}: ${title}`, sanitizeOps: false, sanitizeResources: false }, async () => {
      const target = await makeTarget();
      const client = new OpenAI({ apiKey: target.keys.api, baseURL: `${target.url}/v1`, maxRetries: 0 });
      const engine = new ScriptedEngine();
      const worker = startWorker(target, engine, { key: target.keys.admin });
      try {
        await fn(target, client, engine);
      } finally {
        await worker.stop();
        await target.close();
      }
    });

  test("responses.create and responses.stream answer text; events numbered in OpenAI's order", async (t, client) => {
    const response = await client.responses.create({ model: "any", input: "echo hello there world", store: false });
    assert.equal(response.object, "response");
    assert.equal(response.status, "completed");
    assert.equal(response.output_text, "hello there world");
    assert.equal(response.model, "scripted");
    assert.equal(response.usage?.output_tokens, 3);
    assert.equal(response.usage?.input_tokens_details.cached_tokens, 0);
    assert.equal(response.usage?.output_tokens_details.reasoning_tokens, 0);
    assert.match(response.id, /^resp_/);

    const stream = client.responses.stream({ model: "any", input: "echo one two three" });
    const types: string[] = [];
    const numbers: number[] = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      numbers.push(event.sequence_number);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    const final = await stream.finalResponse();
    assert.equal(text, "one two three");
    assert.equal(final.output_text, "one two three");
    assert.deepEqual(numbers, types.map((_, i) => i));
    assert.deepEqual(dedupe(types), [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    // The raw stream names each event (`event:` lines), as OpenAI's does.
    const raw = await fetch(`${t.url}/v1/responses`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", input: "echo hi", stream: true }),
    });
    assert.match(raw.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.ok(raw.headers.get("x-request-id"));
    assert.match(await raw.text(), /^event: response\.created\ndata: \{/);
  });

  test(
    "a forced function tool: valid JSON arguments, streamed and whole; the choice reaches the worker",
    async (_t, client, engine) => {
      const request = {
        model: "any",
        input: 'tool get_weather {"city":"Paris"}',
        tools: [weather],
        tool_choice: { type: "function" as const, name: "get_weather" },
      };
      const response = await client.responses.create(request);
      const call = response.output.find((item) => item.type === "function_call");
      assert.ok(call && call.type === "function_call");
      assert.equal(call.name, "get_weather");
      assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });
      assert.match(call.call_id, /^call_/);
      assert.deepEqual(engine.received.at(-1)!.request.toolChoice, { name: "get_weather" });

      const stream = client.responses.stream(request);
      const deltas: string[] = [];
      let done = "";
      for await (const event of stream) {
        if (event.type === "response.function_call_arguments.delta") deltas.push(event.delta);
        if (event.type === "response.function_call_arguments.done") done = event.arguments;
      }
      assert.ok(deltas.length > 1, "arguments arrive in fragments");
      assert.equal(deltas.join(""), done);
      const final = await stream.finalResponse();
      const streamed = final.output.find((item) => item.type === "function_call");
      assert.ok(streamed?.type === "function_call");
      assert.deepEqual(JSON.parse(streamed.arguments), { city: "Paris" });
    },
  );

  test(
    "a follow-up turn with function_call_output becomes a tool result after the call",
    async (_t, client, engine) => {
      const first = await client.responses.create({
        model: "any",
        input: 'tool get_weather {"city":"Oslo"}',
        tools: [weather],
      });
      const call = first.output.find((item) => item.type === "function_call")!;
      assert.equal(call.type, "function_call");
      const followUp = await client.responses.create({
        model: "any",
        instructions: "Be brief.",
        tools: [weather],
        input: [
          { role: "user", content: "echo sunny in Oslo" },
          ...(first.output as OpenAI.Responses.ResponseInputItem[]),
          { type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" },
        ],
      });
      assert.equal(followUp.output_text, "sunny in Oslo");
      const messages = engine.received.at(-1)!.request.messages;
      assert.deepEqual(messages.map((m) => m.role), ["system", "user", "assistant", "tool"]);
      assert.deepEqual(messages[0].content, [{ type: "text", text: "Be brief." }]);
      const assistant = messages[2];
      assert.ok(assistant.role === "assistant");
      assert.deepEqual(assistant.toolCalls, [{ id: call.call_id, name: "get_weather", arguments: '{"city":"Oslo"}' }]);
      assert.ok(messages[3].role === "tool" && messages[3].toolCallId === call.call_id);
    },
  );

  test("max_output_tokens cuts the answer: status incomplete, reason max_output_tokens", async (_t, client, engine) => {
    const response = await client.responses.create({ model: "any", input: "words 10", max_output_tokens: 4 });
    assert.equal(response.status, "incomplete");
    assert.deepEqual(response.incomplete_details, { reason: "max_output_tokens" });
    assert.equal(response.output_text, "w0 w1 w2 w3 ");
    assert.equal(engine.received.at(-1)!.request.maxTokens, 4);
    const message = response.output[0];
    assert.ok(message.type === "message" && message.status === "incomplete");

    const stream = client.responses.stream({ model: "any", input: "words 10", max_output_tokens: 3 });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    assert.equal(types.at(-1), "response.incomplete");
    assert.ok(!types.includes("response.completed"));
  });

  test(
    "text.format json_schema reaches the worker as its schema; responses.parse reads the JSON",
    async (_t, client, engine) => {
      const Answer = z.object({ city: z.string(), degrees: z.number() });
      const parsed = await client.responses.parse({
        model: "any",
        input: 'echo {"city":"Oslo","degrees":21}',
        text: { format: zodTextFormat(Answer, "answer") },
      });
      assert.deepEqual(parsed.output_parsed, { city: "Oslo", degrees: 21 });
      const format = engine.received.at(-1)!.request.responseFormat;
      assert.ok(format?.type === "json_schema");
      assert.equal(format.name, "answer");
      assert.deepEqual(Object.keys((format.schema as { properties: object }).properties), ["city", "degrees"]);
    },
  );

  test("reasoning: a summary when asked, carried back through encrypted_content", async (_t, client, engine) => {
    const response = await client.responses.create({
      model: "any",
      input: "think about it | the answer",
      reasoning: { effort: "low", summary: "auto" },
      include: ["reasoning.encrypted_content"],
    });
    const reasoning = response.output[0];
    assert.ok(reasoning.type === "reasoning");
    assert.deepEqual(reasoning.summary, [{ type: "summary_text", text: "about it" }]);
    assert.ok(reasoning.encrypted_content);
    assert.equal(response.output_text, "the answer");
    assert.deepEqual(engine.received.at(-1)!.request.reasoning, { enabled: true, effort: "low" });

    const stream = client.responses.stream({
      model: "any",
      input: "think step one | done",
      reasoning: { summary: "auto" },
    });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    assert.ok(types.includes("response.reasoning_summary_part.added"));
    assert.ok(types.includes("response.reasoning_summary_text.delta"));
    assert.ok(types.includes("response.reasoning_summary_text.done"));

    // The reasoning item goes back in the next turn's input and restores the earlier turn's reasoning.
    await client.responses.create({
      model: "any",
      input: [
        { role: "user", content: "first" },
        ...(response.output as OpenAI.Responses.ResponseInputItem[]),
        { role: "user", content: "echo next" },
      ],
    });
    const assistant = engine.received.at(-1)!.request.messages[1];
    assert.ok(assistant.role === "assistant");
    assert.deepEqual(assistant.reasoning, [{ text: "about it" }]);
    assert.deepEqual(assistant.content, [{ type: "text", text: "the answer" }]);
  });

  test(
    "custom tools: a grammar-valid input is a custom_tool_call; an invalid one is never returned",
    async (t, client, engine) => {
      const patch = "*** Begin Patch\n*** Add File: hello.txt\n+Hello world\n*** End Patch\n";
      const valid = await client.responses.create({
        model: "any",
        input: `tool apply_patch ${JSON.stringify({ input: patch })}`,
        tools: [applyPatchTool],
      });
      const call = valid.output.find((item) => item.type === "custom_tool_call");
      assert.ok(call?.type === "custom_tool_call", JSON.stringify(valid.output));
      assert.equal(call.name, "apply_patch");
      assert.equal(call.input, patch);
      const tool = engine.received.at(-1)!.request.tools[0];
      assert.deepEqual(tool.freeform, { syntax: "lark", definition: APPLY_PATCH_LARK });

      const stream = client.responses.stream({
        model: "any",
        input: `tool apply_patch ${JSON.stringify({ input: patch })}`,
        tools: [applyPatchTool],
      });
      let streamedInput = "";
      for await (const event of stream) {
        if (event.type === "response.custom_tool_call_input.done") streamedInput = event.input;
      }
      assert.equal(streamedInput, patch);

      const broken = `tool apply_patch ${JSON.stringify({ input: "*** Begin Patch\nrm -rf /\n" })}`;
      await assert.rejects(
        client.responses.create({ model: "any", input: broken, tools: [applyPatchTool] }),
        (error: unknown) => error instanceof OpenAI.InternalServerError && /not valid/.test(error.message),
      );
      const events = await rawEvents(t, { model: "m", input: broken, tools: [applyPatchTool], stream: true });
      const last = events.at(-1)!;
      assert.equal(last.type, "response.failed");
      assert.equal(last.response.error.code, "server_error");
      assert.ok(!events.some((e) => e.type === "response.output_item.added" && e.item.type === "custom_tool_call"));

      // A custom call goes back as custom_tool_call + custom_tool_call_output.
      await client.responses.create({
        model: "any",
        tools: [applyPatchTool],
        input: [
          { role: "user", content: "patch it" },
          call,
          { type: "custom_tool_call_output", call_id: call.call_id, output: "Done!" },
          { role: "user", content: "echo thanks" },
        ],
      });
      const [, assistant, result] = engine.received.at(-1)!.request.messages;
      assert.ok(assistant.role === "assistant" && result.role === "tool");
      assert.deepEqual(JSON.parse(assistant.toolCalls![0].arguments), { input: patch });
      assert.deepEqual(result.content, [{ type: "text", text: "Done!" }]);
    },
  );

  test(
    "stateless: previous_response_id, store: true and unknown items are 400s; input_tokens counts",
    async (t, client) => {
      const cases: [string, Record<string, unknown>][] = [
        ["previous_response_id", { previous_response_id: "resp_123" }],
        ["store", { store: true }],
        ["input[0]", { input: [{ type: "item_reference", id: "msg_1" }] }],
        ["tools[0]", { tools: [{ type: "file_search", vector_store_ids: ["vs_1"] }] }],
        ["include", { include: ["message.output_text.logprobs"] }],
      ];
      for (const [param, extra] of cases) {
        const error = await client.responses.create({ model: "m", input: "hi", ...extra } as never).then(
          () => assert.fail(`${param} was accepted`),
          (e: unknown) => e,
        );
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.equal(error.param, param);
        assert.match(error.message, /not supported|not accepted|Invalid/);
      }
      // Counting input tokens: the worker renders the prompt and reports its size.
      const counted = await client.responses.inputTokens.count({
        input: "count these words",
        instructions: "Be brief.",
      });
      assert.equal(counted.object, "response.input_tokens");
      assert.ok(counted.input_tokens > 0);
      const missing = await fetch(`${t.url}/v1/responses/resp_abc`, {
        headers: { authorization: `Bearer ${t.keys.api}` },
      });
      assert.equal(missing.status, 404);
      assert.equal((await missing.json()).error.code, "response_not_found");
    },
  );

  test(
    "Codex's request shape is accepted: namespace, hosted web_search dropped, session headers as cache key",
    async (t, _client, engine) => {
      const response = await fetch(`${t.url}/v1/responses`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${t.keys.api}`,
          "content-type": "application/json",
          "session-id": "0199aaaa-bbbb-cccc-dddd-eeeeffff0000",
        },
        body: JSON.stringify({
          model: "any",
          instructions: "You are Codex.",
          input: [
            { type: "message", role: "developer", content: [{ type: "input_text", text: "skills" }] },
            { type: "message", role: "user", content: [{ type: "input_text", text: "<environment_context/>" }] },
            { type: "message", role: "user", content: [{ type: "input_text", text: "tool multi_agent_v1__spawn {}" }] },
          ],
          tools: [
            { ...weather, name: "exec_command" },
            {
              type: "namespace",
              name: "multi_agent_v1",
              description: "agents",
              tools: [{ ...weather, name: "spawn" }],
            },
            { type: "web_search", external_web_access: false },
          ],
          tool_choice: "auto",
          parallel_tool_calls: true,
          reasoning: { summary: "auto" },
          store: false,
          stream: true,
          include: ["reasoning.encrypted_content"],
          prompt_cache_key: "0199aaaa-bbbb-cccc-dddd-eeeeffff0000",
          client_metadata: { "x-codex-installation-id": "x" },
        }),
      });
      assert.equal(response.status, 200);
      const events = parseSse(await response.text());
      const done = events.find((e) => e.type === "response.output_item.done")!;
      assert.equal(done.item.type, "function_call");
      assert.equal(done.item.name, "spawn");
      assert.equal(done.item.namespace, "multi_agent_v1");
      const request = engine.received.at(-1)!.request;
      assert.deepEqual(request.tools.map((tool) => tool.name), ["exec_command", "multi_agent_v1__spawn"]);
      assert.equal(request.conversationKey, "h:0199aaaa-bbbb-cccc-dddd-eeeeffff0000");
      assert.deepEqual(request.messages.map((m) => m.role), ["system", "user", "user"]);
      assert.deepEqual(request.messages[0].content.map((p) => p.type === "text" && p.text), [
        "You are Codex.",
        "skills",
      ]);
      assert.equal(events.at(-1)!.type, "response.completed");
    },
  );
}

/** Consecutive duplicates removed (deltas). */
function dedupe(types: string[]): string[] {
  return types.filter((type, i) => type !== types[i - 1]);
}

// deno-lint-ignore no-explicit-any
type AnyEvent = Record<string, any>;

export function parseSse(text: string): AnyEvent[] {
  return text.split("\n\n").filter((block) => block.includes("data: ")).map((block) => {
    const data = block.split("\n").find((line) => line.startsWith("data: "))!;
    return JSON.parse(data.slice(6));
  });
}

async function rawEvents(t: RouterTarget, body: unknown): Promise<AnyEvent[]> {
  const response = await fetch(`${t.url}/v1/responses`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return parseSse(await response.text());
}
