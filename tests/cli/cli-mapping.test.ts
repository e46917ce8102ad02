/**
 * The CLI worker's pure parts and its small server, without the CLI: conversation planning (system prompt,
 * history, final turn, tool results), the transcript, the command line and environment, the stream-json
 * translator (lines shaped as Claude Code 2.1.197 writes them), the slash-command guard, the caller-tools MCP
 * server over real HTTP, and the worker's command-line flags.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChatRequest, type ChatRequestInput } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import { guardSlashCommand } from "../../workers/cli/cli-engine.ts";
import { buildCliArgs, buildCliEnv } from "../../workers/cli/cli-process.ts";
import { callerTools, CliRequestError, planConversation } from "../../workers/cli/conversation.ts";
import { parseCliWorkerArgs } from "../../workers/cli/main.ts";
import { ArgsError } from "../../workers/common/worker-main.ts";
import { CallerToolServer } from "../../workers/cli/mcp-server.ts";
import { DEFAULT_RATE_LIMIT_RETRY_SECONDS, StreamJsonTranslator } from "../../workers/cli/stream-json.ts";
import { buildTranscript, projectDirName, transcriptPath } from "../../workers/cli/transcript.ts";

const request = (input: Omit<ChatRequestInput, "requestedModel">) =>
  ChatRequest.parse({ requestedModel: "m", ...input });
const text = (t: string) => ({ type: "text" as const, text: t });

Deno.test("plan: system prompt, history as Anthropic turns, the last user turn as the prompt", () => {
  const plan = planConversation(request({
    messages: [
      { role: "system", content: [text("Block one."), text("Block two.")] },
      { role: "user", content: [text("Hi"), { type: "image", url: "data:image/png;base64,AAAA" }] },
      {
        role: "assistant",
        content: [text("Calling.")],
        reasoning: [{ text: "unsigned" }, { text: "signed", signature: "S1" }, { text: "", redacted: "R1" }],
        toolCalls: [{ id: "c1", name: "get.weather", arguments: '{"city":"Oslo"}' }],
      },
      { role: "tool", toolCallId: "c1", content: [text("sunny")], isError: true },
      { role: "system", content: [text("A reminder.")] },
      { role: "assistant", content: [text("Sunny.")] },
      { role: "user", content: [text("Thanks")] },
    ],
  }));
  assert.equal(plan.systemPrompt, "Block one.\n\nBlock two.");
  assert.deepEqual(plan.history, [
    {
      role: "user",
      content: [text("Hi"), { type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } }],
    },
    {
      role: "assistant",
      content: [
        { type: "thinking", thinking: "signed", signature: "S1" },
        { type: "redacted_thinking", data: "R1" },
        text("Calling."),
        { type: "tool_use", id: "c1", name: "mcp__api__get_weather", input: { city: "Oslo" } },
      ],
    },
    {
      role: "user",
      content: [{ type: "tool_result", tool_use_id: "c1", content: "sunny", is_error: true }, text("A reminder.")],
    },
    { role: "assistant", content: [text("Sunny.")] },
  ]);
  assert.deepEqual(plan.final, { kind: "prompt", content: [text("Thanks")] });
});

Deno.test("plan: tool results at the end leave the last call open for the CLI; text beside them resumes", () => {
  const calls = [
    { id: "a", name: "lookup", arguments: '{"q":1}' },
    { id: "b", name: "lookup", arguments: "not json" },
  ];
  const plan = planConversation(request({
    messages: [
      { role: "user", content: [text("Look both up")] },
      { role: "assistant", content: [], toolCalls: calls },
      { role: "tool", toolCallId: "a", content: [text("one")] },
      { role: "tool", toolCallId: "b", content: [text("two"), { type: "image", url: "data:image/gif;base64,R0lG" }] },
      { role: "user", content: [text("Compare.")] },
    ],
  }));
  assert.equal(plan.systemPrompt, "");
  assert.deepEqual(plan.history.at(-1), {
    role: "user",
    content: [{ type: "tool_result", tool_use_id: "a", content: "one" }],
  });
  assert.deepEqual(plan.final, {
    kind: "tool_results",
    deferred: {
      toolUseId: "b",
      name: "mcp__api__lookup",
      input: { arguments: "not json" },
      result: { content: [{ type: "text", text: "two" }, { type: "image", data: "R0lG", mimeType: "image/gif" }] },
    },
    resumePrompt: "Compare.",
  });

  const single = planConversation(request({
    messages: [
      { role: "user", content: [text("x")] },
      { role: "assistant", content: [], toolCalls: [calls[0]] },
      { role: "tool", toolCallId: "a", content: [text("failed")], isError: true },
    ],
  }));
  assert.equal(single.history.length, 2);
  assert.deepEqual(single.final, {
    kind: "tool_results",
    deferred: {
      toolUseId: "a",
      name: "mcp__api__lookup",
      input: { q: 1 },
      result: { content: [text("failed")], isError: true },
    },
  });
});

Deno.test("plan: what the CLI cannot take is refused with a reason", () => {
  const refused = (messages: ChatRequestInput["messages"], pattern: RegExp) =>
    assert.throws(() => planConversation(request({ messages })), (err: unknown) => {
      assert.ok(err instanceof CliRequestError);
      assert.equal(err.code, "invalid_request");
      assert.match(err.message, pattern);
      return true;
    });
  refused([{ role: "system", content: [text("only a system prompt")] }], /no user message/);
  refused([{ role: "user", content: [text("q")] }, { role: "assistant", content: [text("prefill")] }], /prefill/);
  refused([{ role: "user", content: [text("q")] }, { role: "tool", toolCallId: "zz", content: [text("r")] }], /answer/);
  refused([
    { role: "user", content: [text("q")] },
    { role: "assistant", content: [], toolCalls: [{ id: "a", name: "t", arguments: "{}" }] },
    { role: "tool", toolCallId: "a", content: [text("r")] },
    { role: "user", content: [{ type: "image", url: "https://example.com/x.png" }] },
  ], /images/);
  // Legacy completions: the prompt is the user turn.
  assert.deepEqual(planConversation(request({ messages: [], prompt: "Once upon" })).final, {
    kind: "prompt",
    content: [text("Once upon")],
  });
});

Deno.test("caller tools: sanitized MCP names mapped back, object schemas, none offered for tool_choice none", () => {
  const tools = [{ name: "db.query", description: "Run SQL", parameters: { properties: { sql: { type: "string" } } } }];
  const offered = callerTools(request({ messages: [], tools }));
  assert.deepEqual(offered.tools, [{
    name: "db_query",
    description: "Run SQL",
    inputSchema: { type: "object", properties: { sql: { type: "string" } } },
  }]);
  assert.equal(offered.originalNames.get("db_query"), "db.query");
  assert.deepEqual(callerTools(request({ messages: [], tools, toolChoice: "none" })).tools, []);
});

Deno.test("transcript: chained entries, distinct assistant ids, the run's model, the deferred marker", () => {
  let n = 0;
  const lines = buildTranscript({
    sessionId: "sess",
    cwd: "/tmp/job/work",
    model: "claude-opus-4-8",
    cliVersion: "2.1.197",
    history: [
      { role: "user", content: [text("q")] },
      { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "mcp__api__x", input: {} }] },
    ],
    deferred: { toolUseId: "t1", name: "mcp__api__x", input: {}, result: { content: [] } },
    newUuid: () => `u${++n}`,
    timestamp: "2026-01-01T00:00:00.000Z",
  }).trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.type, l.uuid, l.parentUuid]), [
    ["user", "u1", null],
    ["assistant", "u2", "u1"],
    ["attachment", "u3", "u2"],
  ]);
  assert.equal(lines[1].message.model, "claude-opus-4-8");
  assert.equal(lines[1].message.stop_reason, "tool_use");
  assert.equal(lines[1].message.id, "msg_auxot_1");
  assert.deepEqual(lines[2].attachment, {
    type: "hook_deferred_tool",
    toolUseID: "t1",
    toolName: "mcp__api__x",
    toolInput: {},
    hookName: "PreToolUse:mcp__api__x",
    hookEvent: "PreToolUse",
    permissionMode: "default",
  });
  assert.equal(projectDirName("/tmp/auxot-cli-Ab.1/work"), "-tmp-auxot-cli-Ab-1-work");
  assert.equal(transcriptPath("/h/.claude", "/tmp/w", "s"), join("/h/.claude/projects/-tmp-w/s.jsonl"));
});

Deno.test("command line: tools off by default; operator tools allowed; file mentions blocked unless Read is on", () => {
  const plain = buildCliArgs({ model: "opus", systemPromptFile: "/j/s.txt", cliTools: [], promptOnStdin: true });
  assert.deepEqual(plain, [
    "-p",
    "--verbose",
    "--output-format",
    "stream-json",
    "--include-partial-messages",
    "--model",
    "opus",
    "--system-prompt-file",
    "/j/s.txt",
    "--tools",
    "",
    "--disable-slash-commands",
    "--strict-mcp-config",
    "--disallowedTools",
    "Read(//**)",
    "--max-turns",
    "1",
    "--input-format",
    "stream-json",
  ]);
  const tooled = buildCliArgs({
    model: "sonnet",
    systemPromptFile: "/j/s.txt",
    cliTools: ["Bash", "Read"],
    mcpConfigFile: "/j/mcp.json",
    resumeSessionId: "sess",
    promptOnStdin: false,
    effort: "low",
    thinkingDisabled: true,
  });
  const after = (flag: string) => tooled[tooled.indexOf(flag) + 1];
  assert.equal(after("--tools"), "Bash,Read");
  assert.equal(after("--allowedTools"), "Bash,Read,mcp__api");
  assert.equal(after("--mcp-config"), "/j/mcp.json");
  assert.equal(after("--resume"), "sess");
  assert.equal(after("--effort"), "low");
  assert.equal(after("--thinking"), "disabled");
  for (const absent of ["--disallowedTools", "--max-turns", "--input-format"]) assert.ok(!tooled.includes(absent));
});

Deno.test("environment: an allowlist, router keys and secrets never included, per-job folders", () => {
  const env = buildCliEnv({
    base: {
      PATH: "/usr/bin",
      HOME: "/root",
      ANTHROPIC_API_KEY: "sk-ant",
      CLAUDE_CODE_OAUTH_TOKEN: "oauth",
      CLAUDE_CONFIG_DIR: "/root/.claude",
      AUXOT_GPU_KEY: "adm_secret",
      AUXOT_ROUTER_URL: "https://r",
      SOME_COPY: "adm_secret",
      DATABASE_URL: "postgres://x",
      MY_EXTRA: "yes",
      HTTPS_PROXY: "http://proxy",
    },
    passEnv: ["MY_EXTRA", "SOME_COPY"],
    secrets: ["adm_secret"],
    home: "/j/home",
    configDir: "/j/home/.claude",
    tmpDir: "/j/tmp",
    maxOutputTokens: 500,
    resumePrompt: "go on",
  });
  assert.equal(env.PATH, "/usr/bin");
  assert.equal(env.ANTHROPIC_API_KEY, "sk-ant");
  assert.equal(env.CLAUDE_CODE_OAUTH_TOKEN, "oauth");
  assert.equal(env.HTTPS_PROXY, "http://proxy");
  assert.equal(env.MY_EXTRA, "yes");
  assert.equal(env.HOME, "/j/home");
  assert.equal(env.CLAUDE_CONFIG_DIR, "/j/home/.claude");
  assert.equal(env.TMPDIR, "/j/tmp");
  assert.equal(env.CLAUDE_CODE_MAX_OUTPUT_TOKENS, "500");
  assert.equal(env.CLAUDE_CODE_RESUME_PROMPT, "go on");
  assert.equal(env.MCP_CONNECTION_NONBLOCKING, "0");
  assert.equal(env.DISABLE_TELEMETRY, "1");
  for (const name of ["AUXOT_GPU_KEY", "AUXOT_ROUTER_URL", "SOME_COPY", "DATABASE_URL"]) {
    assert.ok(!(name in env), name);
  }
  assert.ok(!Object.values(env).some((v) => v.includes("adm_secret")));
});

/** Feeds lines (objects) to a fresh translator; returns every event and whether it asked to stop the CLI. */
function translate(lines: unknown[], options = {}): { events: JobEvent[]; stop: boolean; t: StreamJsonTranslator } {
  const t = new StreamJsonTranslator(options);
  const events: JobEvent[] = [];
  let stop = false;
  for (const line of lines) {
    const step = t.push(typeof line === "string" ? line : JSON.stringify(line));
    events.push(...step.events);
    stop ||= step.endedWithToolCalls;
  }
  return { events, stop, t };
}

const init = { type: "system", subtype: "init", model: "claude-opus-4-8", tools: [], session_id: "s" };
const se = (event: unknown, parent: string | null = null) => ({
  type: "stream_event",
  event,
  session_id: "s",
  parent_tool_use_id: parent,
});
const messageStart = (
  usage = { input_tokens: 10, output_tokens: 0, cache_read_input_tokens: 3, cache_creation_input_tokens: 2 },
) => se({ type: "message_start", message: { id: "msg_1", model: "m-upstream", content: [], usage } });

Deno.test("stream-json: text and thinking deltas, usage with cache tokens and cost, finish reason", () => {
  const { events, stop, t } = translate([
    init,
    { type: "system", subtype: "status", status: "requesting" },
    messageStart(),
    se({ type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } }),
    se({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "hmm" } }),
    se({ type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "sig" } }),
    { type: "assistant", message: { content: [{ type: "thinking", thinking: "hmm", signature: "sig" }] } },
    se({ type: "content_block_stop", index: 0 }),
    se({ type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }),
    se({ type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "Hello " } }),
    se({ type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "world" } }, "toolu_sub"),
    se({ type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "world" } }),
    se({ type: "content_block_stop", index: 1 }),
    se({ type: "message_delta", delta: { stop_reason: "max_tokens" }, usage: { output_tokens: 5 } }),
    se({ type: "message_stop" }),
    "not json at all",
    { type: "something_new", x: 1 },
    {
      type: "result",
      subtype: "success",
      is_error: false,
      api_error_status: null,
      result: "Hello world",
      stop_reason: "max_tokens",
      total_cost_usd: 0.000189,
      usage: { input_tokens: 10, cache_creation_input_tokens: 2, cache_read_input_tokens: 3, output_tokens: 5 },
    },
    { type: "result", subtype: "success", is_error: false }, // nothing after the end counts
  ]);
  assert.equal(stop, false);
  assert.equal(t.model, "claude-opus-4-8");
  assert.equal(t.unparsedLines, 2);
  assert.deepEqual(events, [
    { type: "start", model: "m-upstream", promptTokens: 15 },
    { type: "reasoning", text: "hmm" },
    { type: "reasoning_signature", signature: "sig" },
    { type: "text", text: "Hello " },
    { type: "text", text: "world" },
    {
      type: "usage",
      usage: { promptTokens: 15, completionTokens: 5, cachedTokens: 3, cacheCreationTokens: 2, costUsd: 0.000189 },
    },
    { type: "done", finishReason: "length" },
  ]);
});

Deno.test("stream-json: the caller's tool calls end the job; the CLI's own tools do not", () => {
  const { events, stop } = translate([
    init,
    messageStart(),
    se({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    se({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Listing." } }),
    se({
      type: "content_block_start",
      index: 1,
      content_block: { type: "tool_use", id: "toolu_b", name: "Bash", input: {} },
    }),
    se({
      type: "content_block_delta",
      index: 1,
      delta: { type: "input_json_delta", partial_json: '{"command":"ls"}' },
    }),
    se({ type: "content_block_stop", index: 1 }),
    se({ type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 4 } }),
    se({ type: "message_stop" }),
    { type: "user", message: { content: [{ type: "tool_result", tool_use_id: "toolu_b", content: "a b" }] } },
    messageStart({ input_tokens: 20, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }),
    se({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    se({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Checking" } }),
    se({
      type: "content_block_start",
      index: 1,
      content_block: { type: "tool_use", id: "toolu_w", name: "mcp__api__db_query", input: {} },
    }),
    se({ type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '{"sql":' } }),
    se({ type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '"select 1"}' } }),
    se({
      type: "content_block_start",
      index: 2,
      content_block: { type: "tool_use", id: "toolu_v", name: "mcp__api__other", input: {} },
    }),
    se({ type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: "{}" } }),
    se({ type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } }),
    se({ type: "message_stop" }),
    { type: "user", message: { content: [] } },
  ], { originalToolNames: new Map([["db_query", "db.query"]]) });
  assert.equal(stop, true);
  assert.deepEqual(events.slice(1), [
    { type: "text", text: "Listing." },
    { type: "text", text: "\n\n" },
    { type: "text", text: "Checking" },
    { type: "tool_call", index: 0, id: "toolu_w", name: "db.query" },
    { type: "tool_args", index: 0, delta: '{"sql":' },
    { type: "tool_args", index: 0, delta: '"select 1"}' },
    { type: "tool_call", index: 1, id: "toolu_v", name: "other" },
    { type: "tool_args", index: 1, delta: "{}" },
    { type: "usage", usage: { promptTokens: 35, completionTokens: 13, cachedTokens: 3, cacheCreationTokens: 2 } },
    { type: "done", finishReason: "tool_calls" },
  ]);
});

Deno.test("stream-json: API errors, rate limits and silent exits become explicit errors", () => {
  const synthetic = (error: string, text: string) => ({
    type: "assistant",
    error,
    message: { model: "<synthetic>", content: [{ type: "text", text }] },
    parent_tool_use_id: null,
  });
  const failed = (status: number, text: string) => ({
    type: "result",
    subtype: "success",
    is_error: true,
    api_error_status: status,
    result: text,
    usage: { input_tokens: 0, output_tokens: 0 },
  });
  const limited = translate([init, synthetic("rate_limit", "API Error: 429"), failed(429, "API Error: 429")]);
  assert.deepEqual(limited.events, [{
    type: "error",
    message: "API Error: 429",
    retryable: true,
    code: "rate_limited",
    retryAfterSeconds: DEFAULT_RATE_LIMIT_RETRY_SECONDS,
  }]);
  const resetsAt = 1_800_000_000;
  const subscription = translate([
    init,
    { type: "rate_limit_event", rate_limit_info: { status: "rejected", resetsAt, rateLimitType: "five_hour" } },
    synthetic("rate_limit", "You've hit your limit"),
    failed(429, "You've hit your limit"),
  ], { now: () => (resetsAt - 3600) * 1000 });
  assert.equal(subscription.events[0].type === "error" && subscription.events[0].retryAfterSeconds, 3600);

  const server = translate([
    init,
    synthetic("server_error", "API Error: 500 boom"),
    failed(500, "API Error: 500 boom"),
  ]);
  assert.deepEqual(server.events, [{
    type: "error",
    message: "API Error: 500 boom",
    retryable: false,
    code: "cli_error",
  }]);
  const invalid = translate([init, failed(400, "prompt is too long")]);
  assert.equal(invalid.events[0].type === "error" && invalid.events[0].code, "invalid_request");
  const maxTurns = translate([
    init,
    { type: "result", subtype: "error_max_turns", is_error: true, errors: ["Reached maximum number of turns (1)"] },
  ]);
  assert.match(maxTurns.events[0].type === "error" ? maxTurns.events[0].message : "", /maximum number of turns/);
  // Answered by the CLI itself (a slash command, say): the model never saw it.
  const local = translate([init, { type: "result", subtype: "success", is_error: false, result: "Not available." }]);
  assert.equal(local.events[0].type === "error" && local.events[0].code, "cli_error");

  const died = new StreamJsonTranslator();
  died.push(JSON.stringify(init));
  assert.deepEqual(died.exitedWithoutResult({ code: 1, signal: null, stderr: "a\nb\nError: no auth\n" }), [{
    type: "error",
    message: "Claude Code exited with code 1 without a result: a | b | Error: no auth",
    retryable: false,
    code: "cli_error",
  }]);
});

Deno.test("slash-command guard: leading slashes of the last text block get a block of their own", () => {
  assert.deepEqual(guardSlashCommand([text("/compact now")]), [text("/"), text("compact now")]);
  assert.deepEqual(guardSlashCommand([text("/x"), text("//help")]), [text("/x"), text("//"), text("help")]);
  for (const unchanged of [[text("no slash")], [text("/")], [text("/ ")], [text(" /compact")]]) {
    assert.deepEqual(guardSlashCommand(unchanged), unchanged);
  }
});

Deno.test("caller-tools MCP server: initialize, tools/list, the deferred call answered, others held", async () => {
  const server = new CallerToolServer();
  try {
    const session = await server.register({
      tools: [{ name: "lookup", inputSchema: { type: "object" } }],
      replay: { name: "lookup", result: { content: [{ type: "text", text: "the answer" }] } },
    });
    const rpc = (body: unknown) =>
      fetch(session.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify(body),
      });
    const init =
      await (await rpc({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25" } }))
        .json();
    assert.equal(init.result.protocolVersion, "2025-11-25");
    assert.deepEqual(init.result.capabilities, { tools: { listChanged: false } });
    const note = await rpc({ jsonrpc: "2.0", method: "notifications/initialized" });
    assert.equal(note.status, 202);
    await note.body?.cancel();
    const get = await fetch(session.url);
    assert.equal(get.status, 405);
    await get.body?.cancel();
    const list = await (await rpc({ jsonrpc: "2.0", id: 1, method: "tools/list" })).json();
    assert.deepEqual(list.result.tools, [{ name: "lookup", inputSchema: { type: "object" } }]);
    const replayed =
      await (await rpc({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "lookup", arguments: {} } }))
        .json();
    assert.deepEqual(replayed.result, { content: [{ type: "text", text: "the answer" }] });
    // A call the model makes now is the caller's to run: held until the job ends.
    let settled = false;
    const held = rpc({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "lookup", arguments: {} } })
      .then((r) => r.json()).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(settled, false);
    session.close();
    const answer = await held;
    assert.equal(answer.id, 3);
    assert.match(answer.error.message, /returned to the API caller/);
    const gone = await fetch(session.url, { method: "POST", body: "{}" });
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("worker flags: clear messages for what is missing or wrong", () => {
  const fails = (argv: string[], env: Record<string, string>, pattern: RegExp) =>
    assert.throws(
      () => parseCliWorkerArgs(argv, env),
      (err: unknown) => err instanceof ArgsError && pattern.test(err.message),
    );
  fails([], {}, /No router URL: pass --router-url/);
  fails(["--router-url", "http://r"], {}, /No worker key: pass --gpu-key-file FILE/);
  fails(["--router-url", "http://r", "--gpu-key", "api_x"], {}, /must be a worker key/);
  fails(["--router-url", "ftp://r", "--gpu-key", "adm_x"], {}, /http\(s\) URL/);
  fails(["--router-url", "http://r", "--gpu-key", "adm_x", "--pass-env", "AUXOT_GPU_KEY"], {}, /never reaches the CLI/);
  fails(["--bogus"], {}, /Unknown option/);
  const args = parseCliWorkerArgs(["--claude-path", "/opt/claude", "--pass-env", "A, B"], {
    AUXOT_ROUTER_URL: "https://router.example",
    AUXOT_GPU_KEY: "adm_abc",
  });
  assert.equal(args.routerUrl, "https://router.example");
  assert.equal(args.key, "adm_abc");
  assert.equal(args.claudePath, "/opt/claude");
  assert.deepEqual(args.passEnv, ["A", "B"]);
  assert.equal(parseCliWorkerArgs([], { AUXOT_ROUTER_URL: "http://r", AUXOT_GPU_KEY: "adm_x" }).claudePath, "claude");
});

Deno.test("worker process: exits 2 with the usage when flags are missing, and when claude is not there", async () => {
  const main = new URL("../../workers/cli/main.ts", import.meta.url).pathname;
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, ...args],
      env: { AUXOT_LOG_LEVEL: "error" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const missing = await run([]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /No router URL/);
  assert.match(missing.stderr, /Usage: deno task worker:cli/);
  const noClaude = await run([
    "--router-url",
    "http://127.0.0.1:9",
    "--gpu-key",
    "adm_x",
    "--claude-path",
    "/nonexistent/claude",
  ]);
  assert.equal(noClaude.code, 2);
  assert.match(noClaude.stderr, /Cannot run Claude Code at "\/nonexistent\/claude"/);
});
