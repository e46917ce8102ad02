/**
 * The server-side tool loop end to end: real router, a GPU-side test engine behind the real worker loop, and a
 * real tools worker process. The caller (official OpenAI and Anthropic SDKs) sees one answer while the router
 * runs the server tools in between; usage covers every round; the caller's own tools still come back to it; a
 * tools worker that vanishes mid-call fails that call promptly.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { eventually, type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { fixtureServer, startToolsWorker, type ToolsWorkerProcess, ToolUsingEngine, waitForTools } from "./helpers.ts";

const test = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false }, fn);

const user = (text: string) => [{ role: "user" as const, content: text }];

async function withFleet(
  env: Record<string, string>,
  toolsFlags: string[],
  use: (
    ctx: { router: RouterTarget; engine: ToolUsingEngine; tools: ToolsWorkerProcess; client: OpenAI },
  ) => Promise<void>,
): Promise<void> {
  const router = await startDenoRouter(env);
  const engine = new ToolUsingEngine();
  const gpu = startWorker(router, engine, { key: router.keys.admin });
  const tools = await startToolsWorker(["--tools-key", router.keys.tools, "--router-url", router.url, ...toolsFlags]);
  try {
    const client = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    await use({ router, engine, tools, client });
  } finally {
    await tools.stop();
    await gpu.stop();
    await router.close();
  }
}

test("tool loop: server tools run between rounds; the caller sees one answer with usage for all rounds", async (t) => {
  await withFleet({}, ["--builtins", "code_executor"], async ({ router, engine, client }) => {
    await waitForTools(router.url, router.keys.api, ["code_executor"]);

    await t.step("tool_choice forces a server tool; the final answer arrives", async () => {
      const completion = await client.chat.completions.create({
        model: "m",
        messages: user(JSON.stringify({ code: "console.log(6 * 7)" })),
        tool_choice: { type: "function", function: { name: "code_executor" } },
      });
      assert.equal(completion.choices[0].message.content, "Let me check.\n\nresult: 42\n");
      assert.equal(completion.choices[0].finish_reason, "stop");
      assert.equal(completion.choices[0].message.tool_calls, undefined, "server calls are not the caller's");
      const [first, second] = engine.jobs.slice(-2);
      assert.deepEqual(first.request.toolChoice, { name: "code_executor" });
      assert.ok(first.request.tools.some((tool) => tool.name === "code_executor"));
      assert.equal(second.request.toolChoice, "auto", "a forced choice applies to the first round only");
      const metrics = await (await fetch(`${router.url}/metrics`, {
        headers: { authorization: `Bearer ${router.keys.admin}` },
      })).text();
      assert.match(
        metrics,
        /auxot_tool_calls_total\{(?=[^}]*tool="code_executor")(?=[^}]*outcome="ok")[^}]*\} 1\b/,
        "the server tool call is counted",
      );
      const [, assistant, result] = second.request.messages;
      assert.equal(assistant.role, "assistant");
      assert.deepEqual(assistant.role === "assistant" && assistant.toolCalls?.map((c) => c.name), ["code_executor"]);
      assert.deepEqual(result, {
        role: "tool",
        toolCallId: assistant.role === "assistant" ? assistant.toolCalls![0].id : "",
        content: [{ type: "text", text: "42\n" }],
      });
      // Usage covers both rounds: 5 + 7 completion tokens, prompts of 1 and 3 messages (10 tokens each).
      assert.equal(completion.usage?.completion_tokens, 12);
      assert.equal(completion.usage?.prompt_tokens, 10 + 30);
    });

    await t.step("a server tool the model chooses (auto), streamed: text only, usage summed", async () => {
      const stream = await client.chat.completions.create({
        model: "m",
        messages: user('tool code_executor {"code":"console.log(1 + 1)"}'),
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let finish;
      let usage;
      for await (const chunk of stream) {
        assert.equal(chunk.choices[0]?.delta.tool_calls, undefined);
        text += chunk.choices[0]?.delta.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        usage = chunk.usage ?? usage;
      }
      assert.equal(text, "result: 2\n");
      assert.equal(finish, "stop");
      const [first, second] = engine.jobs.slice(-2);
      const scriptedPrompt = JSON.stringify(first.request.messages).length >> 2;
      assert.equal(usage?.completion_tokens, 5 + 7);
      assert.equal(usage?.prompt_tokens, scriptedPrompt + 10 * second.request.messages.length);
    });

    await t.step("the Anthropic API gets the same loop", async () => {
      const anthropic = new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 });
      const message = await anthropic.messages.create({
        model: "claude-sonnet-5",
        max_tokens: 100,
        messages: user('tool code_executor {"code":"console.log(\\"hi\\")"}'),
      });
      assert.deepEqual(message.content, [{ type: "text", text: "result: hi\n" }]);
      assert.equal(message.stop_reason, "end_turn");
      assert.equal(message.usage.output_tokens, 12);
    });

    await t.step("tool errors and bad arguments become error results the model answers from", async () => {
      const failed = await client.chat.completions.create({
        model: "m",
        messages: user(`tool code_executor {"code":"throw new Error('nope')"}`),
      });
      assert.match(
        failed.choices[0].message.content!,
        /^tool error: The code failed \(exit code 1\)[\s\S]*Error: nope/,
      );
      const garbled = await client.chat.completions.create({ model: "m", messages: user("tool code_executor {oops") });
      assert.match(
        garbled.choices[0].message.content!,
        /^tool error: The arguments for code_executor are not valid JSON/,
      );
      assert.equal(engine.jobs.at(-1)!.request.messages.at(-1)?.role === "tool", true);
    });

    await t.step("a caller tool named like a server tool is the caller's: its call comes back", async () => {
      const own = { name: "code_executor", description: "the caller's own", parameters: { type: "object" } };
      const completion = await client.chat.completions.create({
        model: "m",
        messages: user('tool code_executor {"code":"mine"}'),
        tools: [{ type: "function", function: own }],
      });
      assert.equal(completion.choices[0].finish_reason, "tool_calls");
      const call = completion.choices[0].message.tool_calls![0] as { function: { name: string; arguments: string } };
      assert.equal(call.function.name, "code_executor");
      assert.deepEqual(JSON.parse(call.function.arguments), { code: "mine" });
      const offered = engine.jobs.at(-1)!.request.tools.filter((tool) => tool.name === "code_executor");
      assert.deepEqual(offered.map((tool) => tool.description), ["the caller's own"]);
    });

    await t.step("a model that keeps calling server tools is stopped after the round limit", async () => {
      const before = engine.jobs.length;
      const completion = await client.chat.completions.create({
        model: "m",
        messages: user('always code_executor {"code":"console.log(0)"}'),
      });
      assert.equal(completion.choices[0].message.content, "no more code_executor");
      const rounds = engine.jobs.slice(before);
      assert.equal(rounds.length, 9, "8 rounds of tool calls, then one without server tools");
      assert.deepEqual(rounds.at(-1)!.request.tools, []);
      assert.equal(rounds.at(-1)!.request.toolChoice, "none");
    });

    await t.step("tool_choice naming an unknown tool is still a 400", async () => {
      const err = await client.chat.completions.create({
        model: "m",
        messages: user("hi"),
        tool_choice: { type: "function", function: { name: "nonexistent" } },
      }).catch((e) => e);
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal((err.error as { param?: string }).param, "tool_choice");
    });
  });
});

test("tool loop: a tools worker that vanishes mid-call fails that call promptly; the answer goes on", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const web = fixtureServer(async () => {
    await released;
    return new Response("too late");
  });
  try {
    // Lease 1 s; the job timeout (5 min) stays: without prompt detection this test would hang for minutes.
    await withFleet(
      { AUXOT_LEASE_TIMEOUT: "1s" },
      ["--builtins", "web_fetch", "--fetch-allow", `127.0.0.1:${web.port}`],
      async ({ router, engine, tools, client }) => {
        await waitForTools(router.url, router.keys.api, ["web_fetch"]);
        const answer = client.chat.completions.create({
          model: "m",
          messages: user(`tool web_fetch {"url":"${web.url}/hang"}`),
        });
        await eventually(() => web.requests.length > 0, 20_000, "the tool call to start");
        await tools.kill();
        const completion = await answer;
        assert.match(
          completion.choices[0].message.content!,
          /^tool error: Tool unavailable: the tools worker running web_fetch stopped responding; the call was abandoned/,
        );
        assert.equal(web.requests.length, 1, "the call was not run again elsewhere");
        assert.equal(engine.jobs.at(-1)!.request.messages.at(-1)?.role, "tool");
      },
    );
  } finally {
    release();
    await web.close();
  }
});
