/**
 * The CLI worker end to end with the real Claude Code CLI (npm, pinned), offline:
 *
 *   OpenAI / Anthropic SDK → router B (AUXOT_ENGINE=cli) → CLI worker (CliEngine) → `claude -p` →
 *   router A (/v1/messages) → scripted worker (its "model" obeys the caller's instruction)
 *
 * Router A stands in for Anthropic's API; what reaches its worker shows what the CLI sent (history, tool results,
 * parameters). Checked: plain and streamed answers through both SDKs, thinking, token-level deltas, the
 * conversation history as real turns, the caller's tools returned as tool calls and their results fed back (one
 * and several), cancel killing the CLI, failures as explicit errors (upstream failure, a CLI that dies, a rate
 * limit), slash commands and `@file` mentions kept away from the CLI, and the CLI's environment (via its Bash tool,
 * enabled on a second router in CLI mode).
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import type { JobEvent } from "../../src/protocol/events.ts";
import type { Policy } from "../../src/protocol/worker-protocol.ts";
import { CliEngine } from "../../workers/cli/cli-engine.ts";
import { eventually, type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { callerInstruction, ClaudeCodeScriptedEngine } from "./claude-code-scripted.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
// The pinned CLI by path: node_modules/.bin/claude may be either installed version.
const CLAUDE = join(ROOT, "node_modules/@anthropic-ai/claude-code/bin/claude.exe");
const WEATHER = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

interface Setup {
  upstream: RouterTarget;
  scripted: ClaudeCodeScriptedEngine;
  router: RouterTarget;
  engine: CliEngine;
  workDir: string;
  openai: OpenAI;
  anthropic: Anthropic;
}

/** The CLI's environment: what a worker operator would export (no AUXOT_* reaches the CLI, the key included). */
function cliEnv(upstream: RouterTarget): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "",
    ANTHROPIC_BASE_URL: upstream.url,
    ANTHROPIC_API_KEY: upstream.keys.api,
    CLAUDE_CODE_MAX_RETRIES: "0",
    AUXOT_GPU_KEY: upstream.keys.admin,
  };
}

async function withSetup(fn: (s: Setup, t: Deno.TestContext) => Promise<void>, t: Deno.TestContext, env = {}) {
  const workDir = await mkdtemp(join(tmpdir(), "auxot-cli-test-"));
  const upstream = await startDenoRouter();
  const scripted = new ClaudeCodeScriptedEngine({ slots: 4 });
  const upstreamWorker = startWorker(upstream, scripted, { key: upstream.keys.admin });
  const router = await startDenoRouter({ AUXOT_ENGINE: "cli", AUXOT_MODEL: "opus", AUXOT_MAX_PARALLEL: "2", ...env });
  const engine = new CliEngine({
    claudePath: CLAUDE,
    env: cliEnv(upstream),
    secrets: [router.keys.admin],
    workDir,
  });
  const worker = startWorker(router, engine, { key: router.keys.admin });
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      20_000,
      "the CLI worker",
    );
    await fn({
      upstream,
      scripted,
      router,
      engine,
      workDir,
      openai: new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 }),
      anthropic: new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 }),
    }, t);
  } finally {
    await worker.stop();
    await engine.dispose();
    await router.close();
    await upstreamWorker.stop();
    await upstream.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

const user = (text: string) => [{ role: "user" as const, content: text }];

/** Every per-job directory is gone once the job is over. */
async function noJobDirectories(workDir: string) {
  await eventually(async () => (await readdir(workDir)).length === 0, 5_000, "per-job directories removed");
}

Deno.test({
  name: "CLI worker: the real Claude Code CLI serves OpenAI and Anthropic callers through router B",
  sanitizeOps: false,
  sanitizeResources: false,
}, (t) =>
  withSetup(async (s, t) => {
    await t.step("OpenAI SDK, non-streaming: text, usage, the model the CLI ran", async () => {
      const completion = await s.openai.chat.completions.create({
        model: "gpt-anything",
        messages: [{ role: "system", content: "You are terse." }, ...user("echo hello from the cli")],
        max_completion_tokens: 321,
        reasoning_effort: "low",
      });
      assert.equal(completion.choices[0].message.content, "hello from the cli");
      assert.equal(completion.choices[0].finish_reason, "stop");
      assert.ok(completion.usage!.prompt_tokens > 0);
      assert.equal(completion.usage!.completion_tokens, 4);
      assert.equal(completion.model, "scripted"); // the model that answered upstream
      const seen = s.scripted.original.at(-1)!.request;
      assert.equal(seen.maxTokens, 321);
      assert.equal(seen.reasoning?.effort, "low");
      // The caller's system prompt replaced Claude Code's agentic one.
      const system = seen.messages.filter((m) => m.role === "system").flatMap((m) => m.content)
        .map((p) => p.type === "text" ? p.text : "").join("\n");
      assert.match(system, /You are terse\./);
      assert.doesNotMatch(system, /software engineering/);
      await noJobDirectories(s.workDir);
    });

    await t.step("OpenAI SDK, streaming: token-level deltas and usage", async () => {
      const stream = await s.openai.chat.completions.create({
        model: "m",
        messages: user("echo one two three four"),
        stream: true,
        stream_options: { include_usage: true },
      });
      const deltas: string[] = [];
      let finish: string | null = null;
      let usage;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content);
        finish = chunk.choices[0]?.finish_reason ?? finish;
        usage = chunk.usage ?? usage;
      }
      assert.equal(deltas.join(""), "one two three four");
      assert.ok(deltas.length >= 2, `streamed in pieces: ${JSON.stringify(deltas)}`);
      assert.equal(finish, "stop");
      assert.equal(usage?.completion_tokens, 4);
    });

    await t.step("Anthropic SDK: thinking and text, streamed and whole", async () => {
      const stream = s.anthropic.messages.stream({
        model: "claude-x",
        max_tokens: 200,
        messages: user("think pondering deeply | the answer"),
      });
      const kinds: string[] = [];
      for await (const event of stream) if (event.type === "content_block_start") kinds.push(event.content_block.type);
      const final = await stream.finalMessage();
      assert.deepEqual(kinds, ["thinking", "text"]);
      assert.equal(final.content[0].type === "thinking" && final.content[0].thinking, "pondering deeply");
      assert.equal(final.content[1].type === "text" && final.content[1].text, "the answer");
      assert.equal(final.stop_reason, "end_turn");

      const whole = await s.anthropic.messages.create({
        model: "claude-x",
        max_tokens: 100,
        system: "Answer plainly.",
        messages: user("echo plain words"),
      });
      assert.equal(whole.content[0].type === "text" && whole.content[0].text, "plain words");
      assert.ok(whole.usage.input_tokens > 0);
    });

    await t.step("the history reaches the model as real turns (tool calls, results, signed thinking)", async () => {
      const answer = await s.anthropic.messages.create({
        model: "claude-x",
        max_tokens: 100,
        tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
        messages: [
          { role: "user", content: "What is the weather in Oslo?" },
          {
            role: "assistant",
            content: [
              { type: "thinking", thinking: "Use the tool.", signature: "SIG-123" },
              { type: "text", text: "Let me check." },
              { type: "tool_use", id: "toolu_h1", name: "get_weather", input: { city: "Oslo" } },
            ],
          },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_h1", content: "sunny, 21C" }] },
          { role: "assistant", content: "It is sunny in Oslo." },
          { role: "user", content: "echo thanks" },
        ],
      });
      assert.equal(answer.content[0].type === "text" && answer.content[0].text, "thanks");
      const seen = s.scripted.original.at(-1)!.request.messages.filter((m) => m.role !== "system");
      const assistant = seen.find((m) => m.role === "assistant" && m.toolCalls);
      assert.ok(assistant && assistant.role === "assistant");
      assert.deepEqual(assistant.toolCalls, [{
        id: "toolu_h1",
        name: "mcp__api__get_weather",
        arguments: '{"city":"Oslo"}',
      }]);
      assert.deepEqual(assistant.reasoning, [{ text: "Use the tool.", signature: "SIG-123" }]);
      const result = seen.find((m) => m.role === "tool");
      assert.ok(result && result.role === "tool");
      assert.equal(result.toolCallId, "toolu_h1");
      assert.deepEqual(result.content, [{ type: "text", text: "sunny, 21C" }]);
      assert.ok(seen.some((m) =>
        m.role === "assistant" && m.content.some((p) => p.type === "text" && p.text === "It is sunny in Oslo.")
      ));
      // One model call upstream: nothing from the history was run again.
      assert.equal(
        seen.filter((m) =>
          m.role === "tool"
        ).length,
        1,
      );
    });
  }, t));

Deno.test({
  name: "CLI worker: the caller's tools round trip with the real Claude Code CLI",
  sanitizeOps: false,
  sanitizeResources: false,
}, (t) =>
  withSetup(async (s, t) => {
    await t.step("a caller's tool comes back as a tool call; its result goes to the model", async () => {
      const first = await s.openai.chat.completions.create({
        model: "m",
        messages: user('tool mcp__api__get_weather {"city":"Paris"}'),
        tools: [WEATHER],
      });
      const choice = first.choices[0];
      assert.equal(choice.finish_reason, "tool_calls");
      const call = choice.message.tool_calls![0] as { id: string; function: { name: string; arguments: string } };
      assert.equal(call.function.name, "get_weather");
      assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
      // The CLI was stopped rather than left waiting on the tool.
      await eventually(() => s.engine.runningPids.length === 0, 5_000, "the CLI stopped");
      await noJobDirectories(s.workDir);

      const second = await s.openai.chat.completions.create({
        model: "m",
        messages: [
          ...user('tool mcp__api__get_weather {"city":"Paris"}'),
          choice.message,
          { role: "tool", tool_call_id: call.id, content: "rainy, 12C" },
        ],
        tools: [WEATHER],
      });
      assert.match(second.choices[0].message.content ?? "", /^results: rainy, 12C \/ /);
      const seen = s.scripted.original.at(-1)!.request.messages;
      const calls = seen.filter((m) => m.role === "assistant").flatMap((m) =>
        m.role === "assistant" ? m.toolCalls ?? [] : []
      );
      assert.deepEqual(calls.map((c) => c.id), [call.id]);
    });

    await t.step("streaming tool calls, and several results in one turn with text beside them", async () => {
      const stream = s.anthropic.messages.stream({
        model: "claude-x",
        max_tokens: 100,
        tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
        messages: user('tool mcp__api__get_weather {"city":"Rome"}'),
      });
      const final = await stream.finalMessage();
      assert.equal(final.stop_reason, "tool_use");
      const toolUse = final.content.find((b) => b.type === "tool_use");
      assert.ok(toolUse && toolUse.type === "tool_use");
      assert.equal(toolUse.name, "get_weather");
      assert.deepEqual(toolUse.input, { city: "Rome" });

      const answer = await s.anthropic.messages.create({
        model: "claude-x",
        max_tokens: 100,
        tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
        messages: [
          ...user("weather in Rome and Oslo?"),
          {
            role: "assistant",
            content: [
              { type: "tool_use", id: "toolu_a", name: "get_weather", input: { city: "Rome" } },
              { type: "tool_use", id: "toolu_b", name: "get_weather", input: { city: "Oslo" } },
            ],
          },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: "toolu_a", content: "hot" },
              { type: "tool_result", tool_use_id: "toolu_b", content: "cold" },
              { type: "text", text: "compare them" },
            ],
          },
        ],
      });
      assert.equal(answer.content[0].type === "text" && answer.content[0].text, "results: hot + cold / compare them");
    });
  }, t));

Deno.test({
  name: "CLI worker: guards, failures and cancel with the real Claude Code CLI",
  sanitizeOps: false,
  sanitizeResources: false,
}, (t) =>
  withSetup(async (s, t) => {
    await t.step("slash commands and @file mentions stay text for the model", async () => {
      const slash = await s.openai.chat.completions.create({ model: "m", messages: user("/help me please") });
      assert.equal(slash.choices[0].message.content, "ok");
      assert.equal(callerInstruction(s.scripted.original.at(-1)!.request.messages), "/help me please");
      const mention = await s.openai.chat.completions.create({ model: "m", messages: user("echo see @/etc/hostname") });
      assert.equal(mention.choices[0].message.content, "see @/etc/hostname");
      const sent = JSON.stringify(s.scripted.original.at(-1)!.request.messages);
      assert.doesNotMatch(sent, /Read tool/, "the CLI attached no file");
    });

    await t.step("an upstream failure is an explicit error", async () => {
      const err = await s.openai.chat.completions.create({ model: "m", messages: user("fail disk on fire") })
        .catch((e) => e);
      assert.ok(err instanceof OpenAI.APIError, String(err));
      assert.equal(err.status, 500);
      assert.match(err.message, /disk on fire/);
      await noJobDirectories(s.workDir);
    });

    await t.step("cancel: a caller that leaves stops the CLI and its upstream call", async () => {
      const controller = new AbortController();
      const pending = s.openai.chat.completions.create(
        { model: "m", messages: user("hang"), stream: true },
        { signal: controller.signal },
      ).then(async (stream) => {
        for await (const _ of stream) { /* nothing comes */ }
      }).catch((e) => e);
      const upstreamJobs = s.scripted.original.length;
      await eventually(() => s.scripted.original.length > upstreamJobs, 15_000, "the CLI's upstream call");
      const [pid] = s.engine.runningPids;
      assert.ok(pid);
      controller.abort();
      await pending;
      await eventually(() => !alive(pid), 10_000, "the CLI process gone");
      await eventually(() => s.scripted.cancelled.length > 0, 10_000, "the upstream call cancelled");
      await noJobDirectories(s.workDir);
    });
  }, t));

Deno.test({
  name: "CLI worker: built-in CLI tools only when the operator enables them; the CLI's environment has no router keys",
  sanitizeOps: false,
  sanitizeResources: false,
}, (t) =>
  withSetup(
    async (s) => {
      const answer = await s.openai.chat.completions.create({
        model: "m",
        messages: user('tool Bash {"command":"env; pwd","description":"print the environment"}'),
      });
      // The CLI ran its Bash tool itself (no tool call came back) and the output went to the model.
      assert.equal(answer.choices[0].finish_reason, "stop");
      const output = answer.choices[0].message.content ?? "";
      assert.match(output, /^results: /);
      assert.match(output, /ANTHROPIC_BASE_URL=/);
      assert.doesNotMatch(output, /AUXOT_/);
      assert.ok(!output.includes(s.router.keys.admin), "the worker key stays out of the CLI");
      assert.ok(output.includes(`HOME=${s.workDir}`) || output.includes("HOME=/"), output.slice(0, 300));
      const home = /HOME=(\S+)/.exec(output)?.[1] ?? "";
      assert.ok(home.startsWith(await Deno.realPath(s.workDir)) || home.startsWith(s.workDir), `HOME=${home}`);
      await noJobDirectories(s.workDir);
    },
    t,
    { AUXOT_CLI_TOOLS: "Bash" },
  ));

Deno.test({
  name: "CLI engine: a CLI that dies, or is rate limited, ends the job with an explicit error",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-cli-fail-"));
  const policy: Policy = {
    version: "v1",
    engine: "cli",
    model: { name: "opus" },
    ctxSize: 4096,
    maxParallel: 1,
    cliTools: [],
  };
  const job = (text: string) => ({
    id: "job1",
    kind: "chat" as const,
    mode: "generate" as const,
    attempt: 1,
    deadlineMs: 60_000,
    request: {
      requestedModel: "m",
      messages: [{ role: "user" as const, content: [{ type: "text" as const, text }] }],
      tools: [],
      toolChoice: "auto" as const,
      stop: [],
    },
  });
  const run = async (engine: CliEngine, text: string) => {
    const events: JobEvent[] = [];
    await engine.applyPolicy(policy);
    await engine.run(job(text), { emit: (e) => events.push(e) }, new AbortController().signal);
    return events;
  };
  try {
    await t.step("a CLI that exits without a result", async () => {
      const fake = join(dir, "claude");
      await writeFile(
        fake,
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "9.9.9 (Claude Code)"; exit 0; fi\n' +
          'echo "fatal: cannot start the engine" >&2\nexit 3\n',
      );
      await chmod(fake, 0o755);
      const engine = new CliEngine({ claudePath: fake, env: { PATH: Deno.env.get("PATH") }, workDir: dir });
      const events = await run(engine, "hi");
      assert.equal(events.length, 1);
      const [error] = events;
      assert.equal(error.type, "error");
      assert.ok(error.type === "error");
      assert.equal(error.code, "cli_error");
      assert.equal(error.retryable, false);
      assert.match(error.message, /exited with code 3 without a result: fatal: cannot start the engine/);
      await engine.dispose();
    });

    await t.step("a rate-limited CLI: retryable, with a retry-after, and the worker pauses", async () => {
      const stub = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
        if (request.method !== "POST") return new Response("ok");
        return Response.json(
          {
            type: "error",
            error: { type: "rate_limit_error", message: "Number of requests has exceeded your rate limit" },
          },
          { status: 429, headers: { "retry-after": "30" } },
        );
      });
      const engine = new CliEngine({
        claudePath: CLAUDE,
        env: {
          PATH: Deno.env.get("PATH"),
          ANTHROPIC_BASE_URL: `http://127.0.0.1:${stub.addr.port}`,
          ANTHROPIC_API_KEY: "sk-test",
          CLAUDE_CODE_MAX_RETRIES: "0",
        },
        workDir: dir,
      });
      try {
        const events = await run(engine, "hello");
        const error = events.find((e) => e.type === "error");
        assert.ok(error && error.type === "error", JSON.stringify(events));
        assert.equal(error.code, "rate_limited");
        assert.equal(error.retryable, true);
        assert.ok((error.retryAfterSeconds ?? 0) > 0);
        assert.match(error.message, /rate limit/);
        assert.ok(!events.some((e) => e.type === "text"), "the CLI's error text is not an answer");
        assert.equal(engine.slots(), 0, "no new jobs until the limit resets");
        assert.ok(engine.pausedUntil > Date.now());
      } finally {
        await engine.dispose();
        await stub.shutdown();
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}
