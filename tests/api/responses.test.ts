/**
 * Golden tests of the Responses API rendering: job events → the exact SSE event sequence, checked against the
 * shapes of OpenAI's API reference (the openai SDK's `ResponseStreamEvent` types), and the non-streaming body of
 * the same events. Plus the request translation's decisions and the Lark grammar checker.
 */
import assert from "node:assert/strict";
import { ApiError } from "../../src/http/errors.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import { responsesFlavour } from "../../src/api/responses/flavour.ts";
import { toResponsesChat } from "../../src/api/responses/to-chat.ts";
import { larkMatches, parseLark } from "../../src/protocol/lark-grammar.ts";
import { APPLY_PATCH_LARK, applyPatchTool, parseSse } from "./responses-suite.ts";

const meta = { id: "job1", created: 1_700_000_000, model: "tiny" };

function render(body: Record<string, unknown>, events: JobEvent[]) {
  const request = responsesFlavour.toChatRequest(body);
  const options = responsesFlavour.renderOptions(body);
  const encoder = responsesFlavour.encoder(meta, request, options);
  const text = events.map((e) => encoder.push(e)).join("");
  return { text, events: parseSse(text), collect: () => responsesFlavour.collect(events, meta, request, options) };
}

const usage = { type: "usage", usage: { promptTokens: 20, completionTokens: 2, cachedTokens: 8 } } as const;

Deno.test("text: the exact event sequence, numbered, with OpenAI's shapes", () => {
  const { text, events, collect } = render({ model: "m", input: "hi" }, [
    { type: "start", model: "tiny", promptTokens: 20 },
    { type: "text", text: "Hel" },
    { type: "text", text: "lo" },
    usage,
    { type: "done", finishReason: "stop" },
  ]);
  assert.match(text, /^event: response\.created\ndata: /);
  const at = { item_id: "msg_job10000", output_index: 0 };
  const part = (t: string) => ({ type: "output_text", annotations: [], logprobs: [], text: t });
  const message = (status: string, content: unknown[]) => ({
    id: "msg_job10000",
    type: "message",
    status,
    content,
    role: "assistant",
  });
  const withoutResponses = events.map((e) => e.response ? { ...e, response: e.response.status } : e);
  assert.deepEqual(withoutResponses, [
    { type: "response.created", response: "in_progress", sequence_number: 0 },
    { type: "response.in_progress", response: "in_progress", sequence_number: 1 },
    { type: "response.output_item.added", output_index: 0, item: message("in_progress", []), sequence_number: 2 },
    { type: "response.content_part.added", ...at, content_index: 0, part: part(""), sequence_number: 3 },
    { type: "response.output_text.delta", ...at, content_index: 0, delta: "Hel", logprobs: [], sequence_number: 4 },
    { type: "response.output_text.delta", ...at, content_index: 0, delta: "lo", logprobs: [], sequence_number: 5 },
    { type: "response.output_text.done", ...at, content_index: 0, text: "Hello", logprobs: [], sequence_number: 6 },
    { type: "response.content_part.done", ...at, content_index: 0, part: part("Hello"), sequence_number: 7 },
    {
      type: "response.output_item.done",
      output_index: 0,
      item: message("completed", [part("Hello")]),
      sequence_number: 8,
    },
    { type: "response.completed", response: "completed", sequence_number: 9 },
  ]);
  const created = events[0].response;
  assert.equal(created.id, "resp_job1");
  assert.equal(created.object, "response");
  assert.equal(created.created_at, 1_700_000_000);
  assert.deepEqual(created.output, []);
  assert.equal(created.usage, null);
  assert.equal(created.store, false);
  const completed = events.at(-1)!.response;
  assert.deepEqual(completed.output, [message("completed", [part("Hello")])]);
  assert.deepEqual(completed.usage, {
    input_tokens: 20,
    input_tokens_details: { cached_tokens: 8, cache_write_tokens: 0 },
    output_tokens: 2,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 22,
  });
  assert.deepEqual(collect(), completed, "the JSON body is the stream's final response");
});

Deno.test("reasoning summary, then a function call in a namespace: items in order, each closed before the next", () => {
  const body = {
    model: "m",
    input: "hi",
    reasoning: { summary: "auto" },
    include: ["reasoning.encrypted_content"],
    tools: [{ type: "namespace", name: "ns", description: "d", tools: [{ type: "function", name: "f" }] }],
  };
  const { events, collect } = render(body, [
    { type: "start", model: "tiny" },
    { type: "reasoning", text: "Think" },
    { type: "reasoning", text: "ing" },
    { type: "tool_call", index: 0, id: "call_1", name: "ns__f" },
    { type: "tool_args", index: 0, delta: '{"a":' },
    { type: "tool_args", index: 0, delta: "1}" },
    { type: "done", finishReason: "tool_calls" },
  ]);
  const rs = { item_id: "rs_job10000", output_index: 0 };
  const fc = { item_id: "fc_job10001", output_index: 1 };
  const steps = events.slice(2, -1).map(({ sequence_number: _, ...e }) => e);
  const encrypted = steps[6].item.encrypted_content;
  assert.match(encrypted, /^auxot\.v1\./);
  const summary = { type: "summary_text", text: "Thinking" };
  const call = { id: "fc_job10001", type: "function_call", call_id: "call_1", name: "f", namespace: "ns" };
  assert.deepEqual(steps, [
    {
      type: "response.output_item.added",
      output_index: 0,
      item: { id: "rs_job10000", type: "reasoning", summary: [] },
    },
    {
      type: "response.reasoning_summary_part.added",
      ...rs,
      summary_index: 0,
      part: { type: "summary_text", text: "" },
    },
    { type: "response.reasoning_summary_text.delta", ...rs, summary_index: 0, delta: "Think" },
    { type: "response.reasoning_summary_text.delta", ...rs, summary_index: 0, delta: "ing" },
    { type: "response.reasoning_summary_text.done", ...rs, summary_index: 0, text: "Thinking" },
    { type: "response.reasoning_summary_part.done", ...rs, summary_index: 0, part: summary },
    {
      type: "response.output_item.done",
      output_index: 0,
      item: { id: "rs_job10000", type: "reasoning", summary: [summary], encrypted_content: encrypted },
    },
    {
      type: "response.output_item.added",
      output_index: 1,
      item: { ...call, status: "in_progress", arguments: "" },
    },
    { type: "response.function_call_arguments.delta", ...fc, delta: '{"a":' },
    { type: "response.function_call_arguments.delta", ...fc, delta: "1}" },
    { type: "response.function_call_arguments.done", ...fc, name: "f", arguments: '{"a":1}' },
    {
      type: "response.output_item.done",
      output_index: 1,
      item: { ...call, status: "completed", arguments: '{"a":1}' },
    },
  ]);
  assert.equal(events.at(-1)!.type, "response.completed");
  // The encrypted reasoning restores the reasoning text on the next turn.
  const next = toResponsesChat({
    model: "m",
    input: [{ role: "user", content: "hi" }, ...(collect() as { output: unknown[] }).output],
  }).request;
  const assistant = next.messages[1];
  assert.ok(assistant.role === "assistant");
  assert.deepEqual(assistant.reasoning, [{ text: "Thinking" }]);
  assert.deepEqual(assistant.toolCalls, [{ id: "call_1", name: "ns__f", arguments: '{"a":1}' }]);
});

Deno.test("reasoning without a summary request is reasoning_text content", () => {
  const { events } = render({ model: "m", input: "hi" }, [
    { type: "reasoning", text: "hmm" },
    { type: "text", text: "ok" },
    { type: "done", finishReason: "stop" },
  ]);
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(2, 8), [
    "response.output_item.added",
    "response.content_part.added",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.content_part.done",
    "response.output_item.done",
  ]);
  assert.deepEqual(events[3].part, { type: "reasoning_text", text: "" });
  assert.deepEqual(events[7].item.content, [{ type: "reasoning_text", text: "hmm" }]);
  assert.equal(events[7].item.encrypted_content, undefined, "not included unless asked");
});

Deno.test("custom tool calls: held until complete, checked, sent whole; invalid input fails the response", () => {
  const body = { model: "m", input: "hi", tools: [applyPatchTool] };
  const patch = "*** Begin Patch\n*** Delete File: a.txt\n*** End Patch";
  const args = JSON.stringify({ input: patch });
  const { events } = render(body, [
    { type: "tool_call", index: 0, id: "call_9", name: "apply_patch" },
    { type: "tool_args", index: 0, delta: args.slice(0, 10) },
    { type: "tool_args", index: 0, delta: args.slice(10) },
    { type: "done", finishReason: "tool_calls" },
  ]);
  const at = { item_id: "ctc_job10000", output_index: 0 };
  const item = { id: "ctc_job10000", type: "custom_tool_call", call_id: "call_9", name: "apply_patch" };
  assert.deepEqual(events.slice(2).map(({ sequence_number: _, response, ...e }) => response ? e.type : e), [
    { type: "response.output_item.added", output_index: 0, item: { ...item, status: "in_progress", input: "" } },
    { type: "response.custom_tool_call_input.delta", ...at, delta: patch },
    { type: "response.custom_tool_call_input.done", ...at, input: patch },
    { type: "response.output_item.done", output_index: 0, item: { ...item, status: "completed", input: patch } },
    "response.completed",
  ]);

  const invalid = render(body, [
    { type: "text", text: "Here:" },
    { type: "tool_call", index: 0, id: "call_9", name: "apply_patch" },
    { type: "tool_args", index: 0, delta: JSON.stringify({ input: "*** Begin Patch\nnonsense" }) },
    { type: "done", finishReason: "tool_calls" },
  ]);
  const last = invalid.events.at(-1)!;
  assert.equal(last.type, "response.failed");
  assert.equal(last.response.status, "failed");
  assert.equal(last.response.error.code, "server_error");
  assert.match(last.response.error.message, /apply_patch.*not valid/);
  assert.ok(!invalid.events.some((e) => e.item?.type === "custom_tool_call"));
  assert.throws(() => invalid.collect(), (e: unknown) => e instanceof ApiError && e.status === 500);
  // Output after the invalid call (text, more calls) is not sent: response.failed is the last event.
  const after = render(body, [
    { type: "tool_call", index: 0, id: "call_9", name: "apply_patch" },
    { type: "tool_args", index: 0, delta: JSON.stringify({ input: "nonsense" }) },
    { type: "text", text: "more" },
    { type: "tool_call", index: 1, id: "call_10", name: "apply_patch" },
    { type: "done", finishReason: "tool_calls" },
  ]);
  assert.deepEqual(after.events.map((e) => e.type), ["response.created", "response.in_progress", "response.failed"]);
  assert.deepEqual(after.events.map((e) => e.sequence_number), [0, 1, 2]);

  // Cut off by the output limit: the unfinished call is left out of the incomplete response.
  const cut = render(body, [
    { type: "tool_call", index: 0, id: "call_9", name: "apply_patch" },
    { type: "tool_args", index: 0, delta: '{"input": "*** Begin' },
    { type: "done", finishReason: "length" },
  ]);
  assert.deepEqual(cut.events.map((e) => e.type), ["response.created", "response.in_progress", "response.incomplete"]);
  assert.deepEqual(cut.events.at(-1)!.response.incomplete_details, { reason: "max_output_tokens" });
});

Deno.test("max_output_tokens: the open item is incomplete, then response.incomplete", () => {
  const { events, collect } = render({ model: "m", input: "hi", max_output_tokens: 2 }, [
    { type: "text", text: "a b" },
    { type: "done", finishReason: "length" },
  ]);
  assert.equal(events.at(-2)!.item.status, "incomplete");
  const last = events.at(-1)!;
  assert.equal(last.type, "response.incomplete");
  assert.equal(last.response.status, "incomplete");
  assert.equal(last.response.max_output_tokens, 2);
  assert.deepEqual(collect(), last.response);
});

Deno.test("a failure mid-stream is response.failed with a Responses error code; keep-alives are comments", () => {
  const request = responsesFlavour.toChatRequest({ model: "m", input: "hi" });
  const encoder = responsesFlavour.encoder(meta, request, responsesFlavour.renderOptions({ model: "m", input: "hi" }));
  const text = encoder.push({ type: "text", text: "par" }) +
    encoder.fail(new ApiError("rate_limit", "slow down")) + encoder.fail(new ApiError("api_error", "again"));
  const events = parseSse(text);
  assert.deepEqual(events.map((e) => e.type).slice(-3), [
    "response.content_part.done",
    "response.output_item.done",
    "response.failed",
  ]);
  assert.deepEqual(events.at(-1)!.response.error, { code: "rate_limit_exceeded", message: "slow down" });
  assert.equal(events.at(-2)!.item.status, "incomplete");
  assert.equal(encoder.keepAlive(), ": keep-alive\n\n");
});

Deno.test("request translation: system messages merge first, assistant items group, stateless fields refused", () => {
  const { request, echo } = toResponsesChat({
    model: "m",
    instructions: "sys",
    input: [
      { role: "developer", content: "dev" },
      { role: "user", content: [{ type: "input_text", text: "q" }, { type: "input_image", image_url: "data:x" }] },
      { type: "reasoning", summary: [{ type: "summary_text", text: "r1" }] },
      { role: "assistant", content: [{ type: "output_text", text: "a1" }] },
      { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
      { type: "function_call_output", call_id: "c1", output: "out" },
      { type: "reasoning", summary: [], content: [{ type: "reasoning_text", text: "r2" }] },
      { role: "assistant", content: "a2" },
      { role: "developer", content: "later" },
    ],
    tools: [{ type: "function", name: "f" }, { type: "web_search" }],
    temperature: 0.2,
    top_p: 0.5,
    max_output_tokens: 100,
    reasoning: { effort: "xhigh" },
    text: { format: { type: "json_object" } },
  });
  assert.deepEqual(request.messages, [
    { role: "system", content: [{ type: "text", text: "sys" }, { type: "text", text: "dev" }] },
    { role: "user", content: [{ type: "text", text: "q" }, { type: "image", url: "data:x" }] },
    {
      role: "assistant",
      content: [{ type: "text", text: "a1" }],
      reasoning: [{ text: "r1" }],
      toolCalls: [{ id: "c1", name: "f", arguments: "{}" }],
    },
    { role: "tool", toolCallId: "c1", content: [{ type: "text", text: "out" }] },
    { role: "assistant", content: [{ type: "text", text: "a2" }], reasoning: [{ text: "r2" }] },
    { role: "system", content: [{ type: "text", text: "later" }] },
  ]);
  assert.deepEqual(request.tools.map((t) => t.name), ["f"], "the hosted web_search is not offered");
  assert.equal(request.temperature, 0.2);
  assert.equal(request.topP, 0.5);
  assert.equal(request.maxTokens, 100);
  assert.deepEqual(request.reasoning, { enabled: true, effort: "high" });
  assert.deepEqual(request.responseFormat, { type: "json_object" });
  assert.equal(echo.fields.temperature, 0.2);

  const refused = (extra: Record<string, unknown>, param: string) =>
    assert.throws(
      () => toResponsesChat({ model: "m", input: "x", ...extra }),
      (e: unknown) => e instanceof ApiError && e.status === 400 && e.options.param === param,
    );
  refused({ previous_response_id: "r" }, "previous_response_id");
  refused({ store: true }, "store");
  refused({ background: true }, "background");
  refused({ conversation: "c" }, "conversation");
  refused({ top_logprobs: 2 }, "top_logprobs");
  refused({ input: [{ type: "computer_call_output", call_id: "x" }] }, "input[0]");
  refused({ input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }, "input[0].content");
  refused({ tools: [{ type: "code_interpreter" }] }, "tools[0]");
  refused({ tools: [{ type: "function", name: "f" }, { type: "function", name: "f" }] }, "tools");
  refused({ tool_choice: { type: "file_search" } }, "tool_choice");
  refused({
    tools: [{ type: "custom", name: "c", format: { type: "grammar", syntax: "lark", definition: "%ignore WS" } }],
  }, "tools[0].format");
  assert.throws(() => toResponsesChat({ input: "x" }), (e: unknown) => e instanceof ApiError && e.status === 400);
  // allowed_tools narrows what is offered and sets the mode.
  const allowed = toResponsesChat({
    model: "m",
    input: "x",
    tools: [{ type: "function", name: "a" }, { type: "function", name: "b" }],
    tool_choice: { type: "allowed_tools", mode: "required", tools: [{ type: "function", name: "b" }] },
  }).request;
  assert.deepEqual(allowed.tools.map((t) => t.name), ["b"]);
  assert.equal(allowed.toolChoice, "required");
});

Deno.test("Lark: Codex's apply_patch grammar accepts patches and refuses what is not one", () => {
  const grammar = parseLark(APPLY_PATCH_LARK);
  const valid = [
    "*** Begin Patch\n*** Add File: hello.txt\n+Hello world\n*** End Patch\n",
    "*** Begin Patch\n*** Add File: a b.txt\n+one\n+\n+three\n*** End Patch",
    "*** Begin Patch\n*** Delete File: old.txt\n*** Update File: src/app.py\n*** Move to: src/main.py\n" +
    '@@ def greet():\n-print("Hi")\n+print("Hello, world!")\n unchanged\n*** End of File\n*** End Patch\n',
    "*** Begin Patch\n*** Update File: x\n*** End Patch\n",
  ];
  for (const patch of valid) assert.ok(larkMatches(grammar, patch), JSON.stringify(patch));
  const invalid = [
    "",
    "*** Begin Patch\n*** End Patch\n", // no hunk
    "*** Begin Patch\n*** Add File: a\n*** End Patch\n", // an added file needs lines
    "*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch\n",
    "*** Begin Patch\n*** Add File: a\n+x\n*** End Patch\n\n",
    "*** Begin Patch\n*** Update File: a\n@@\n?bad\n*** End Patch\n",
    "*** Begin Patch\n*** Add File: \n+x\n*** End Patch\n", // empty file name
    "*** Begin Patch\n*** Add File: a\n+x\n",
  ];
  for (const text of invalid) assert.ok(!larkMatches(grammar, text), JSON.stringify(text));
});

Deno.test("Lark: the grammar subset — ranges, repetition bounds, optionals, case-insensitive strings, imports", () => {
  const g = parseLark(`
    ?start: greeting ("," greeting)~1..2 [END]   // a comment
    greeting: "hello"i NAME
            | "hi" /[0-9]+/ -> short
    NAME: " " ("a".."z")+
    END: "!" WS?
    %import common.WS
  `);
  assert.ok(larkMatches(g, "HELLO bob,hi42"));
  assert.ok(larkMatches(g, "hello bob,hi1,hello x! "));
  assert.ok(!larkMatches(g, "hello bob"), "~1..2 needs at least one more");
  assert.ok(!larkMatches(g, "hello bob,hi1,hi2,hi3"), "at most two more");
  assert.ok(!larkMatches(g, "hello Bob,hi1"), "a..z range");
  assert.throws(() => parseLark("start: missing"), /undefined missing/);
  assert.throws(() => parseLark('start: "a"\n%ignore " "'), /unsupported directive/);
  assert.throws(() => parseLark('rule: "a"'), /no 'start' rule/);
});

Deno.test("Codex's newer shapes: additional_tools items, a client-side tool_search call and its output", () => {
  const searchTool = {
    type: "tool_search",
    execution: "client",
    description: "Find tools.",
    parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
  };
  const body = {
    model: "m",
    input: [
      {
        type: "additional_tools",
        role: "developer",
        tools: [{ type: "namespace", name: "functions", description: "", tools: [{ type: "custom", name: "exec" }] }],
      },
      { role: "user", content: "find a tool" },
    ],
    tools: [searchTool],
  };
  const { request } = toResponsesChat(body);
  assert.deepEqual(request.tools.map((t) => t.name), ["tool_search", "functions__exec"]);
  assert.deepEqual(request.messages.map((m) => m.role), ["user"]);

  const { events, collect } = render(body, [
    { type: "tool_call", index: 0, id: "call_s", name: "tool_search" },
    { type: "tool_args", index: 0, delta: '{"query":' },
    { type: "tool_args", index: 0, delta: '"calendar"}' },
    { type: "done", finishReason: "tool_calls" },
  ]);
  const item = { id: "tsc_job10000", type: "tool_search_call", call_id: "call_s", execution: "client" };
  assert.deepEqual(events.slice(2, 4).map(({ sequence_number: _, ...e }) => e), [
    { type: "response.output_item.added", output_index: 0, item: { ...item, status: "in_progress", arguments: {} } },
    {
      type: "response.output_item.done",
      output_index: 0,
      item: { ...item, status: "completed", arguments: { query: "calendar" } },
    },
  ]);
  const output = (collect() as { output: unknown[] }).output;

  // The next turn: the call and its output come back; the found tools are offered from then on.
  const next = toResponsesChat({
    ...body,
    input: [
      ...body.input,
      ...output,
      {
        type: "tool_search_output",
        call_id: "call_s",
        execution: "client",
        status: "completed",
        tools: [{ type: "function", name: "create_event", description: "Add an event." }, searchTool],
      },
    ],
  }).request;
  assert.deepEqual(next.tools.map((t) => t.name), ["tool_search", "functions__exec", "create_event"]);
  const [, assistant, result] = next.messages;
  assert.ok(assistant.role === "assistant");
  assert.deepEqual(assistant.toolCalls, [{ id: "call_s", name: "tool_search", arguments: '{"query":"calendar"}' }]);
  assert.ok(result.role === "tool" && result.toolCallId === "call_s");
  assert.match(result.content[0].type === "text" ? result.content[0].text : "", /create_event: Add an event\./);
  assert.throws(
    () => toResponsesChat({ model: "m", input: "x", tools: [{ ...searchTool, execution: "server" }] }),
    (e: unknown) => e instanceof ApiError && e.options.param === "tools[0]",
  );
});

Deno.test("malformed bodies are 400s naming a field, never a crash", () => {
  const valid = {
    model: "m",
    instructions: "sys",
    input: [
      { role: "user", content: [{ type: "input_text", text: "q" }] },
      { type: "reasoning", summary: [{ type: "summary_text", text: "r" }], encrypted_content: "auxot.v1.!!" },
      { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
      { type: "function_call_output", call_id: "c", output: [{ type: "input_text", text: "o" }] },
    ],
    tools: [
      { type: "function", name: "f", parameters: { type: "object" } },
      applyPatchTool,
      { type: "namespace", name: "ns", description: "", tools: [{ type: "function", name: "g" }] },
    ],
    tool_choice: { type: "function", name: "f" },
    text: { format: { type: "json_schema", name: "x", schema: { type: "object" } } },
    reasoning: { effort: "low", summary: "auto" },
  };
  const odd = [null, 0, -1, 1.5, "", "x", true, [], [null], {}, { type: 5 }, { type: "message" }];
  let random = 7;
  const next = (n: number) => (random = (random * 1103515245 + 12345) % 2 ** 31) % n;
  // Every path into the body, replaced in turn by each odd value.
  const paths: (string | number)[][] = [];
  const walk = (value: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (value && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) walk(inner, [...path, Array.isArray(value) ? +key : key]);
    }
  };
  walk(valid, []);
  let refused = 0;
  for (const path of paths.slice(1)) {
    for (let i = 0; i < 4; i++) {
      const body = structuredClone(valid) as Record<string | number, unknown>;
      let target = body;
      for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>;
      target[path.at(-1)!] = odd[next(odd.length)];
      try {
        toResponsesChat(body);
      } catch (error) {
        assert.ok(error instanceof ApiError, `${path.join(".")}: ${error}`);
        assert.equal(error.status, 400);
        assert.ok(error.message.length > 0);
        refused++;
      }
    }
  }
  assert.ok(refused > paths.length, "most mutations are refused");
});
