/**
 * The Anthropic flavour's transforms: request bodies → ChatRequest (every block type, a realistic Claude Code
 * body, validation errors) and job events → SSE text and message JSON, checked byte for byte and by the official
 * `@anthropic-ai/sdk` client reading them from a local HTTP server.
 */
import assert from "node:assert/strict";
import Anthropic, { APIError } from "@anthropic-ai/sdk";
import { ApiError, type ErrorKind } from "../../src/http/errors.ts";
import type { ResponseMeta } from "../../src/api/flavour.ts";
import type { ChatRequest } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import {
  anthropicCountTokensBody,
  anthropicCountTokensRequest,
  anthropicErrorStatus,
  anthropicFlavour,
  anthropicModel,
  anthropicModelsList,
} from "../../src/api/anthropic/flavour.ts";

const meta: ResponseMeta = { id: "job_1", created: 1_700_000_000, model: "Qwen3.5-35B-A3B" };
const SESSION_ID = "5f0c2e9a-7b1d-4c3e-9a8f-2d6b1e0c4a77";

/** A request as Claude Code 2.1.x sends it (see notes/claude-code.md), trimmed to a few tools. */
const claudeCodeBody = {
  model: "claude-sonnet-5",
  max_tokens: 64000,
  stream: true,
  system: [
    { type: "text", text: "x-anthropic-billing-header: cc_version=2.1.197.a1b; cc_entrypoint=sdk-cli;" },
    {
      type: "text",
      text: "You are Claude Code, Anthropic's official CLI for Claude.",
      cache_control: { type: "ephemeral" },
    },
    { type: "text", text: "Use the tools available to you.", cache_control: { type: "ephemeral", ttl: "1h" } },
  ],
  messages: [
    {
      role: "user",
      content: [
        { type: "text", text: "<system-reminder>Context: a repository.</system-reminder>" },
        { type: "text", text: "List the files here.", cache_control: { type: "ephemeral" } },
      ],
    },
    {
      role: "assistant",
      content: [
        { type: "thinking", thinking: "The user wants ls.", signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3h+Ggx/DdjY=" },
        { type: "redacted_thinking", data: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT" },
        { type: "text", text: "I'll list them." },
        { type: "tool_use", id: "toolu_01A", name: "Bash", input: { command: "ls -la", description: "List files" } },
      ],
    },
    {
      role: "user",
      content: [
        {
          type: "tool_result",
          tool_use_id: "toolu_01A",
          content: "README.md\nsrc",
          is_error: false,
          cache_control: { type: "ephemeral" },
        },
        { type: "text", text: "Now read the screenshot." },
      ],
    },
    { role: "system", content: "<system-reminder>The TodoWrite tool hasn't been used recently.</system-reminder>" },
    {
      role: "assistant",
      content: [{ type: "tool_use", id: "toolu_01B", name: "Read", input: { file_path: "/tmp/shot.png" } }],
    },
    {
      role: "user",
      content: [
        {
          type: "tool_result",
          tool_use_id: "toolu_01B",
          is_error: true,
          content: [
            { type: "text", text: "partial read" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
          ],
        },
      ],
    },
  ],
  tools: [
    {
      name: "Bash",
      description: "Executes a bash command.",
      input_schema: {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        properties: {
          command: { type: "string", description: "The command to execute" },
          timeout: { type: "number", exclusiveMinimum: 0, maximum: 600000 },
          run_in_background: { type: "boolean", default: false },
        },
        required: ["command"],
        additionalProperties: false,
      },
    },
    {
      name: "TodoWrite",
      description: "Update the todo list.",
      input_schema: {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        properties: { todos: { type: "array", items: { $ref: "#/$defs/todo" } } },
        required: ["todos"],
        additionalProperties: false,
        $defs: {
          todo: {
            type: "object",
            properties: {
              content: { type: "string", minLength: 1 },
              status: { type: "string", enum: ["pending", "in_progress", "completed"] },
              priority: { anyOf: [{ const: "high" }, { const: "low" }, { type: "null" }] },
            },
            required: ["content", "status"],
          },
        },
      },
    },
    {
      name: "mcp__env__set",
      defer_loading: true,
      cache_control: { type: "ephemeral" },
      input_schema: {
        type: "object",
        properties: {
          vars: { type: "object", propertyNames: { pattern: "^[A-Z_]+$" }, additionalProperties: { type: "string" } },
          url: { type: "string", format: "uri" },
        },
      },
    },
  ],
  metadata: { user_id: JSON.stringify({ device_id: "d41d8cd98f00b204", account_uuid: "", session_id: SESSION_ID }) },
  thinking: { type: "adaptive" },
  context_management: { edits: [{ type: "clear_thinking_20251015", keep: "all" }] },
  output_config: { effort: "high" },
  temperature: 1,
};

Deno.test("a realistic Claude Code request is accepted with everything that matters kept", () => {
  const request = anthropicFlavour.toChatRequest(claudeCodeBody);
  const expected: ChatRequest = {
    requestedModel: "claude-sonnet-5",
    maxTokens: 64000,
    temperature: 1,
    stop: [],
    toolChoice: "auto",
    reasoning: { enabled: true, effort: "high" },
    conversationKey: SESSION_ID,
    messages: [
      {
        role: "system",
        content: [
          { type: "text", text: "x-anthropic-billing-header: cc_version=2.1.197.a1b; cc_entrypoint=sdk-cli;" },
          { type: "text", text: "You are Claude Code, Anthropic's official CLI for Claude." },
          { type: "text", text: "Use the tools available to you." },
        ],
      },
      {
        role: "user",
        content: [
          { type: "text", text: "<system-reminder>Context: a repository.</system-reminder>" },
          { type: "text", text: "List the files here." },
        ],
      },
      {
        role: "assistant",
        content: [{ type: "text", text: "I'll list them." }],
        reasoning: [
          { text: "The user wants ls.", signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3h+Ggx/DdjY=" },
          { text: "", redacted: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT" },
        ],
        toolCalls: [{
          id: "toolu_01A",
          name: "Bash",
          arguments: JSON.stringify({ command: "ls -la", description: "List files" }),
        }],
      },
      { role: "tool", toolCallId: "toolu_01A", content: [{ type: "text", text: "README.md\nsrc" }] },
      { role: "user", content: [{ type: "text", text: "Now read the screenshot." }] },
      {
        role: "system",
        content: [{
          type: "text",
          text: "<system-reminder>The TodoWrite tool hasn't been used recently.</system-reminder>",
        }],
      },
      {
        role: "assistant",
        content: [],
        toolCalls: [{ id: "toolu_01B", name: "Read", arguments: '{"file_path":"/tmp/shot.png"}' }],
      },
      {
        role: "tool",
        toolCallId: "toolu_01B",
        isError: true,
        content: [
          { type: "text", text: "partial read" },
          { type: "image", url: "data:image/png;base64,iVBORw0KGgo=", mediaType: "image/png" },
        ],
      },
    ],
    tools: claudeCodeBody.tools.map((tool) => ({
      name: tool.name,
      ...(tool.description ? { description: tool.description } : {}),
      parameters: tool.input_schema,
    })),
  };
  assert.deepEqual(request, expected);
  // The schemas are the caller's objects, whole: nothing flattened or rewritten.
  assert.deepEqual(request.tools[1].parameters, claudeCodeBody.tools[1].input_schema);
  assert.equal(anthropicFlavour.wantsStream(claudeCodeBody), true);
  assert.equal(anthropicFlavour.wantsStream({ ...claudeCodeBody, stream: undefined }), false);
});

const minimal = { model: "claude-haiku-4-5-20251001", max_tokens: 100 };

function translate(extra: Record<string, unknown>): ChatRequest {
  return anthropicFlavour.toChatRequest({ ...minimal, messages: [{ role: "user", content: "hi" }], ...extra });
}

function userBlocks(...content: unknown[]): ChatRequest["messages"] {
  return anthropicFlavour.toChatRequest({ ...minimal, messages: [{ role: "user", content }] }).messages;
}

Deno.test("string system and string content become single text parts; an empty system adds nothing", () => {
  assert.deepEqual(translate({ system: "Be brief." }).messages, [
    { role: "system", content: [{ type: "text", text: "Be brief." }] },
    { role: "user", content: [{ type: "text", text: "hi" }] },
  ]);
  assert.deepEqual(translate({ system: "" }).messages, [{ role: "user", content: [{ type: "text", text: "hi" }] }]);
  const assistant = anthropicFlavour.toChatRequest({
    ...minimal,
    messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "The answer is (" }],
  }).messages[1];
  assert.deepEqual(assistant, { role: "assistant", content: [{ type: "text", text: "The answer is (" }] });
});

Deno.test("user blocks: images, documents, search results", () => {
  assert.deepEqual(userBlocks({ type: "image", source: { type: "url", url: "https://example.com/a.jpg" } }), [
    { role: "user", content: [{ type: "image", url: "https://example.com/a.jpg" }] },
  ]);
  assert.deepEqual(
    userBlocks(
      { type: "document", title: "notes", source: { type: "text", media_type: "text/plain", data: "line 1" } },
      {
        type: "document",
        source: { type: "content", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      },
      { type: "document", title: "spec", source: { type: "base64", media_type: "application/pdf", data: "JVBERi0=" } },
      {
        type: "search_result",
        title: "Result",
        source: "https://example.com",
        content: [{ type: "text", text: "body" }],
      },
    )[0].content,
    [
      { type: "text", text: "notes\n\nline 1" },
      { type: "text", text: "a\n\nb" },
      { type: "text", text: '[Document "spec" (application/pdf) omitted: this server cannot read it]' },
      { type: "text", text: "Result\n\nhttps://example.com\n\nbody" },
    ],
  );
});

Deno.test("tool_result blocks become tool messages in order, before the turn's other blocks", () => {
  assert.deepEqual(
    userBlocks(
      { type: "text", text: "before" },
      { type: "tool_result", tool_use_id: "t1", content: [{ type: "tool_reference", tool_name: "WebFetch" }] },
      { type: "tool_result", tool_use_id: "t2" },
      { type: "text", text: "after" },
    ),
    [
      { role: "tool", toolCallId: "t1", content: [{ type: "text", text: "Tool reference: WebFetch" }] },
      { role: "tool", toolCallId: "t2", content: [] },
      { role: "user", content: [{ type: "text", text: "before" }, { type: "text", text: "after" }] },
    ],
  );
  // A turn of only tool results gets no empty user message after them.
  assert.deepEqual(userBlocks({ type: "tool_result", tool_use_id: "t1", content: "ok" }), [
    { role: "tool", toolCallId: "t1", content: [{ type: "text", text: "ok" }] },
  ]);
});

Deno.test("assistant thinking without a signature (or an empty one) keeps its text", () => {
  const assistant = anthropicFlavour.toChatRequest({
    ...minimal,
    messages: [
      { role: "user", content: "hi" },
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "local model thought", signature: "" },
          { type: "thinking", thinking: "no signature field" },
          { type: "tool_use", id: "t", name: "noop", input: {} },
        ],
      },
    ],
  }).messages[1];
  assert.deepEqual(assistant, {
    role: "assistant",
    content: [],
    reasoning: [{ text: "local model thought" }, { text: "no signature field" }],
    toolCalls: [{ id: "t", name: "noop", arguments: "{}" }],
  });
});

Deno.test("tool_choice, thinking, effort, sampling, stop sequences and output format", () => {
  const tools = [{ name: "get_weather", input_schema: { type: "object" } }];
  assert.equal(translate({ tools, tool_choice: { type: "auto", disable_parallel_tool_use: true } }).toolChoice, "auto");
  assert.equal(translate({ tools, tool_choice: { type: "any" } }).toolChoice, "required");
  assert.equal(translate({ tools, tool_choice: { type: "none" } }).toolChoice, "none");
  assert.deepEqual(translate({ tools, tool_choice: { type: "tool", name: "get_weather" } }).toolChoice, {
    name: "get_weather",
  });

  assert.deepEqual(translate({ thinking: { type: "enabled", budget_tokens: 2048 } }).reasoning, {
    enabled: true,
    budgetTokens: 2048,
  });
  assert.deepEqual(translate({ thinking: { type: "adaptive", display: "omitted" } }).reasoning, { enabled: true });
  assert.deepEqual(translate({ thinking: { type: "disabled" } }).reasoning, { enabled: false });
  assert.deepEqual(translate({ thinking: { type: "disabled" }, output_config: { effort: "low" } }).reasoning, {
    enabled: false,
    effort: "low",
  });
  assert.deepEqual(translate({ output_config: { effort: "max" } }).reasoning, { enabled: true, effort: "high" });
  assert.equal(translate({ output_config: { effort: "ultra" } }).reasoning, undefined);
  assert.equal(translate({}).reasoning, undefined);

  const sampled = translate({ temperature: 0.2, top_p: 0.9, top_k: 40, stop_sequences: ["\n\nHuman:"] });
  assert.deepEqual(
    { temperature: sampled.temperature, topP: sampled.topP, topK: sampled.topK, stop: sampled.stop },
    { temperature: 0.2, topP: 0.9, topK: 40, stop: ["\n\nHuman:"] },
  );
  // Clients that send null for "not set" are accepted.
  assert.equal(translate({ temperature: null, top_k: null }).temperature, undefined);

  const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] };
  assert.deepEqual(translate({ output_config: { format: { type: "json_schema", schema } } }).responseFormat, {
    type: "json_schema",
    schema,
  });
});

Deno.test("conversationKey: Claude Code's session id from metadata.user_id, nothing from other user ids", () => {
  const legacy = `user_${"ab".repeat(32)}_account_0a1b2c3d-aaaa-bbbb-cccc-000000000000_session_${SESSION_ID}`;
  assert.equal(translate({ metadata: { user_id: legacy } }).conversationKey, SESSION_ID);
  assert.equal(translate({ metadata: { user_id: "customer-42" } }).conversationKey, undefined);
  assert.equal(translate({ metadata: { user_id: "{not json" } }).conversationKey, undefined);
  assert.equal(translate({ metadata: {} }).conversationKey, undefined);
});

Deno.test("count_tokens bodies need no max_tokens", () => {
  const request = anthropicCountTokensRequest({
    model: "claude-opus-4-8",
    messages: [{ role: "user", content: "hi" }],
  });
  assert.equal(request.maxTokens, undefined);
  assert.deepEqual(request.messages, [{ role: "user", content: [{ type: "text", text: "hi" }] }]);
  assert.deepEqual(anthropicCountTokensBody(12), { input_tokens: 12 });
});

Deno.test("invalid requests are 400 invalid_request errors that name the field", () => {
  const valid = { ...minimal, messages: [{ role: "user", content: "hi" }] };
  const cases: [unknown, string][] = [
    [{ ...valid, max_tokens: undefined }, "max_tokens: Field required"],
    [{ ...valid, max_tokens: 0 }, "max_tokens: must be a positive integer"],
    [{ ...valid, max_tokens: 1.5 }, "max_tokens: expected int"],
    [{ ...valid, model: undefined }, "model: Field required"],
    [{ ...valid, messages: {} }, "messages: expected array, got object"],
    [{ ...valid, messages: [{ role: "developer", content: "x" }] }, 'messages.0.role: "developer" is not supported'],
    [{ ...valid, messages: [{ role: "user", content: 5 }] }, "messages.0.content: has the wrong type (got number)"],
    [
      { ...valid, messages: [{ role: "user", content: [{ type: "video" }] }] },
      'messages.0.content.0.type: "video" is not supported; expected one of: text, image, document, search_result',
    ],
    [
      { ...valid, messages: [{ role: "user", content: [{ type: "thinking", thinking: "x", signature: "s" }] }] },
      'messages.0.content.0.type: "thinking" is not supported',
    ],
    [
      { ...valid, messages: [{ role: "assistant", content: [{ type: "tool_use", id: "t", name: 3, input: {} }] }] },
      "messages.0.content.0.name: expected string, got number",
    ],
    [
      { ...valid, messages: [{ role: "user", content: [{ type: "image", source: { type: "file", file_id: "f" } }] }] },
      'messages.0.content.0.source.type: "file" is not supported; expected one of: base64, url',
    ],
    [
      {
        ...valid,
        messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "x" }] }] }],
      },
      'messages.0.content.0.content.0.type: "x" is not supported',
    ],
    [{ ...valid, temperature: 1.5 }, "temperature: "],
    [{ ...valid, thinking: { type: "enabled" } }, "thinking.budget_tokens: Field required"],
    [{ ...valid, thinking: { type: "sometimes" } }, 'thinking.type: "sometimes" is not supported'],
    [{ ...valid, tools: [{ name: "x" }] }, "tools.0.input_schema: Field required"],
    [{ ...valid, tools: [{ type: "bash_20250124", name: "bash" }] }, 'tools.0.type: "bash_20250124" is not supported'],
    [
      { ...valid, tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 0 }] },
      "tools.0.max_uses: must be a positive integer",
    ],
    [
      {
        ...valid,
        tools: [{ type: "web_fetch_20250910", name: "web_fetch", allowed_domains: ["a"], blocked_domains: ["b"] }],
      },
      "tools.0: use either allowed_domains or blocked_domains",
    ],
    [[], "The request body must be a JSON object"],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => anthropicFlavour.toChatRequest(body), (error: unknown) => {
      assert.ok(error instanceof ApiError, `not an ApiError for ${JSON.stringify(body)}`);
      assert.equal(error.kind, "invalid_request");
      assert.equal(error.status, 400);
      assert.ok(error.message.startsWith(message), `"${error.message}" should start with "${message}"`);
      return true;
    });
  }
});

/** Thinking (signed), text, then a tool call whose arguments arrive in fragments. */
const toolTurn: JobEvent[] = [
  { type: "start", model: "qwen", promptTokens: 42 },
  { type: "reasoning", text: "Let me " },
  { type: "reasoning", text: "think." },
  { type: "reasoning_signature", signature: "sig-abc" },
  { type: "text", text: "Checking." },
  { type: "tool_call", index: 0, id: "toolu_1", name: "Bash" },
  { type: "tool_args", index: 0, delta: '{"command":' },
  { type: "tool_args", index: 0, delta: '"ls"}' },
  { type: "usage", usage: { promptTokens: 42, completionTokens: 17, cachedTokens: 30 } },
  { type: "done", finishReason: "tool_calls" },
];

function encode(events: JobEvent[]): string {
  const encoder = anthropicFlavour.encoder(meta, anthropicFlavour.toChatRequest(claudeCodeBody), {
    includeUsage: false,
  });
  return events.map((event) => encoder.push(event)).join("");
}

Deno.test("events render to the exact Anthropic SSE text", () => {
  const frame = (data: Record<string, unknown>) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
  const expected = [
    frame({
      type: "message_start",
      message: {
        id: "msg_job_1",
        type: "message",
        role: "assistant",
        model: "Qwen3.5-35B-A3B",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 42, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
      },
    }),
    frame({ type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } }),
    frame({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "Let me " } }),
    frame({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "think." } }),
    frame({ type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "sig-abc" } }),
    frame({ type: "content_block_stop", index: 0 }),
    frame({ type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }),
    frame({ type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "Checking." } }),
    frame({ type: "content_block_stop", index: 1 }),
    frame({
      type: "content_block_start",
      index: 2,
      content_block: { type: "tool_use", id: "toolu_1", name: "Bash", input: {} },
    }),
    frame({ type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"command":' } }),
    frame({ type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '"ls"}' } }),
    frame({ type: "content_block_stop", index: 2 }),
    frame({
      type: "message_delta",
      delta: { stop_reason: "tool_use", stop_sequence: null },
      usage: { input_tokens: 12, output_tokens: 17, cache_creation_input_tokens: 0, cache_read_input_tokens: 30 },
    }),
    frame({ type: "message_stop" }),
  ].join("");
  assert.equal(encode(toolTurn), expected);
  // A few frames written out literally, so the framing itself (event line, data line, blank line) is pinned too.
  const text = encode(toolTurn);
  assert.ok(text.startsWith('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_job_1",'));
  assert.ok(text.includes(
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' +
      '"delta":{"type":"signature_delta","signature":"sig-abc"}}\n\nevent: content_block_stop\n',
  ));
  assert.ok(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
});

/** Serves fixed response bodies on 127.0.0.1 (random port) to a real SDK client, then shuts down. */
async function withServer(
  respond: (request: Request) => Response,
  use: (client: Anthropic) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, respond);
  try {
    const client = new Anthropic({
      apiKey: "test-key",
      baseURL: `http://127.0.0.1:${server.addr.port}`,
      maxRetries: 0,
    });
    await use(client);
  } finally {
    await server.shutdown();
  }
}

const sseResponse = (text: string) => new Response(text, { headers: { "content-type": "text/event-stream" } });
const params = { model: "claude-sonnet-5", max_tokens: 100, messages: [{ role: "user" as const, content: "hi" }] };

Deno.test("the official SDK assembles the stream into the same message as the JSON body", async () => {
  const collected = anthropicFlavour.collect(toolTurn, meta, anthropicFlavour.toChatRequest(claudeCodeBody));
  assert.deepEqual(collected, {
    id: "msg_job_1",
    type: "message",
    role: "assistant",
    model: "Qwen3.5-35B-A3B",
    content: [
      { type: "thinking", thinking: "Let me think.", signature: "sig-abc" },
      { type: "text", text: "Checking." },
      { type: "tool_use", id: "toolu_1", name: "Bash", input: { command: "ls" } },
    ],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 17, cache_creation_input_tokens: 0, cache_read_input_tokens: 30 },
  });
  await withServer(() => sseResponse(encode(toolTurn)), async (client) => {
    const seen: string[] = [];
    const stream = client.messages.stream(params);
    stream.on("streamEvent", (event) => seen.push(event.type));
    // The SDK adds `parsed_output` (structured outputs) of its own; everything else came from the wire.
    const { parsed_output: _parsed, ...message } = await stream.finalMessage();
    assert.deepEqual(JSON.parse(JSON.stringify(message)), collected);
    assert.equal(seen[0], "message_start");
    assert.equal(seen.at(-1), "message_stop");
  });
  await withServer(() => Response.json(collected), async (client) => {
    const message = await client.messages.create(params);
    assert.deepEqual(message.content, collected.content);
  });
});

Deno.test("stop reasons, stop sequences and a stream that starts at done", () => {
  const stopped = encode([{ type: "text", text: "Hi" }, {
    type: "done",
    finishReason: "stop_sequence",
    stopSequence: "END",
  }]);
  assert.ok(stopped.startsWith("event: message_start\n"));
  assert.ok(stopped.includes('"delta":{"stop_reason":"stop_sequence","stop_sequence":"END"}'));
  assert.ok(encode([{ type: "done", finishReason: "length" }]).includes('"stop_reason":"max_tokens"'));
  assert.ok(encode([{ type: "done", finishReason: "stop" }]).includes('"stop_reason":"end_turn"'));
  // A worker that reports "stop" after a tool call: clients act on tool_use.
  const afterTool = encode([{ type: "tool_call", index: 0, id: "t", name: "x" }, {
    type: "done",
    finishReason: "stop",
  }]);
  assert.ok(afterTool.includes('"stop_reason":"tool_use"'));
  // Nothing follows the end of the message.
  const encoder = anthropicFlavour.encoder(meta, translate({}), { includeUsage: true });
  encoder.push({ type: "done", finishReason: "stop" });
  assert.equal(encoder.push({ type: "text", text: "late" }), "");
  assert.equal(encoder.keepAlive(), "");
});

Deno.test("thinking without a worker signature, and a signature with no thinking text", () => {
  const unsigned = anthropicFlavour.collect(
    [{ type: "reasoning", text: "hmm" }, { type: "text", text: "ok" }, { type: "done", finishReason: "stop" }],
    meta,
    translate({}),
  );
  assert.deepEqual((unsigned as { content: unknown }).content, [
    { type: "thinking", thinking: "hmm", signature: "" },
    { type: "text", text: "ok" },
  ]);
  const omitted = encode([{ type: "reasoning_signature", signature: "s1" }, { type: "done", finishReason: "stop" }]);
  assert.ok(omitted.includes('"content_block":{"type":"thinking","thinking":"","signature":""}'));
  assert.ok(omitted.includes('"delta":{"type":"signature_delta","signature":"s1"}'));
  // Reasoning after a signature is a new thinking block.
  const twice = anthropicFlavour.collect(
    [
      { type: "reasoning", text: "a" },
      { type: "reasoning_signature", signature: "s1" },
      { type: "reasoning", text: "b" },
      { type: "done", finishReason: "stop" },
    ],
    meta,
    translate({}),
  );
  assert.deepEqual((twice as { content: unknown }).content, [
    { type: "thinking", thinking: "a", signature: "s1" },
    { type: "thinking", thinking: "b", signature: "" },
  ]);
});

Deno.test("collect: parallel tool calls, unparseable arguments, usage from start when no usage event", () => {
  const message = anthropicFlavour.collect(
    [
      { type: "start", model: "qwen", promptTokens: 9 },
      { type: "tool_call", index: 0, id: "a", name: "one" },
      { type: "tool_call", index: 1, id: "b", name: "two" },
      { type: "tool_args", index: 0, delta: '{"x":1}' },
      { type: "tool_args", index: 1, delta: '{"cut off' },
      { type: "done", finishReason: "length" },
    ],
    meta,
    translate({}),
  );
  assert.deepEqual(message, {
    id: "msg_job_1",
    type: "message",
    role: "assistant",
    model: "Qwen3.5-35B-A3B",
    content: [
      { type: "tool_use", id: "a", name: "one", input: { x: 1 } },
      { type: "tool_use", id: "b", name: "two", input: {} },
    ],
    stop_reason: "max_tokens",
    stop_sequence: null,
    usage: { input_tokens: 9, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });
});

Deno.test("keep-alives: an SSE comment before message_start, ping events after", () => {
  const encoder = anthropicFlavour.encoder(meta, translate({}), { includeUsage: true });
  assert.equal(encoder.keepAlive(), ": keep-alive\n\n");
  encoder.push({ type: "start", model: "qwen", promptTokens: 3 });
  assert.equal(encoder.keepAlive(), 'event: ping\ndata: {"type":"ping"}\n\n');
});

Deno.test("errors in a stream reach the SDK as Anthropic error events", async () => {
  const encoder = anthropicFlavour.encoder(meta, translate({}), { includeUsage: true });
  const text = encoder.push({ type: "start", model: "qwen", promptTokens: 3 }) +
    encoder.push({ type: "text", text: "partial" }) +
    encoder.fail(new ApiError("overloaded", "All workers are busy"));
  assert.ok(
    text.endsWith(
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"All workers are busy"}}\n\n',
    ),
  );
  assert.equal(encoder.push({ type: "done", finishReason: "stop" }), "");
  await withServer(() => sseResponse(text), async (client) => {
    await assert.rejects(client.messages.stream(params).finalMessage(), (error: unknown) => {
      assert.ok(error instanceof APIError);
      assert.equal(error.type, "overloaded_error");
      assert.equal(error.apiMessage, "All workers are busy");
      return true;
    });
  });
  // A worker's error event: a code naming an error kind keeps it, anything else is api_error.
  const timedOut = anthropicFlavour.encoder(meta, translate({}), { includeUsage: true })
    .push({ type: "error", message: "took too long", retryable: false, code: "timeout" });
  assert.ok(timedOut.includes('"error":{"type":"timeout_error","message":"took too long"}'));
  const other = anthropicFlavour.encoder(meta, translate({}), { includeUsage: true })
    .push({ type: "error", message: "engine crashed", retryable: false, code: "ENGINE" });
  assert.ok(other.includes('"error":{"type":"api_error","message":"engine crashed"}'));
});

Deno.test("HTTP error bodies and statuses follow Anthropic, and the SDK reads them", async () => {
  const expected: Record<ErrorKind, [string, number]> = {
    invalid_request: ["invalid_request_error", 400],
    authentication: ["authentication_error", 401],
    permission: ["permission_error", 403],
    not_found: ["not_found_error", 404],
    payload_too_large: ["request_too_large", 413],
    rate_limit: ["rate_limit_error", 429],
    not_implemented: ["invalid_request_error", 400],
    api_error: ["api_error", 500],
    overloaded: ["overloaded_error", 529],
    timeout: ["timeout_error", 504],
  };
  for (const [kind, [type, status]] of Object.entries(expected) as [ErrorKind, [string, number]][]) {
    const error = new ApiError(kind, `a ${kind} error`);
    assert.deepEqual(anthropicFlavour.errorBody(error), { type: "error", error: { type, message: `a ${kind} error` } });
    assert.equal(anthropicErrorStatus(error), status);
  }
  assert.equal(anthropicErrorStatus(new ApiError("overloaded", "x", { status: 503 })), 503);
  const overloaded = new ApiError("overloaded", "Overloaded");
  await withServer(
    () => Response.json(anthropicFlavour.errorBody(overloaded), { status: anthropicErrorStatus(overloaded) }),
    async (client) => {
      await assert.rejects(client.messages.create(params), (error: unknown) => {
        assert.ok(error instanceof Anthropic.OverloadedError);
        assert.equal(error.type, "overloaded_error");
        return true;
      });
    },
  );
});

Deno.test("models list and model object in Anthropic's shape, read by the SDK", async () => {
  const list = anthropicModelsList("Qwen3.5-35B-A3B");
  assert.deepEqual(list, {
    data: [{
      type: "model",
      id: "Qwen3.5-35B-A3B",
      display_name: "Qwen3.5-35B-A3B",
      created_at: "1970-01-01T00:00:00Z",
    }],
    has_more: false,
    first_id: "Qwen3.5-35B-A3B",
    last_id: "Qwen3.5-35B-A3B",
  });
  await withServer(
    (request) =>
      Response.json(new URL(request.url).pathname === "/v1/models" ? list : anthropicModel("claude-opus-4-8")),
    async (client) => {
      const ids: string[] = [];
      for await (const model of client.models.list()) ids.push(model.id);
      assert.deepEqual(ids, ["Qwen3.5-35B-A3B"]);
      assert.equal((await client.models.retrieve("claude-opus-4-8")).display_name, "claude-opus-4-8");
    },
  );
});
