/**
 * Anthropic's server tools (web_search_20250305, web_fetch_20250910) through the official SDK, served end to end:
 * real router, a GPU-side test engine behind the real worker loop, a real tools worker process whose search
 * backend is a local Brave stand-in. The caller sees server_tool_use, web_search_tool_result (title, url,
 * page_age, encrypted_content) and web_fetch_tool_result blocks and usage.server_tool_use, streamed and not;
 * max_uses, blocked/allowed domains and user_location are honoured; results sent back in a later turn reach the
 * model as the same text it read; a declared server tool nobody serves is a 400 invalid_request_error.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startDenoRouter, startWorker } from "../helpers/router.ts";
import { startToolsWorker, ToolUsingEngine, waitForTools } from "../tools/helpers.ts";
import { pageFake, SEARCH_KEY, searchFake } from "./search-fake.ts";

const WEB_SEARCH: Anthropic.WebSearchTool20250305 = {
  type: "web_search_20250305",
  name: "web_search",
  max_uses: 3,
  blocked_domains: ["blocked.example"],
  user_location: { type: "approximate", country: "de", city: "Berlin" },
};

Deno.test({
  name: "Anthropic server tools: web_search and web_fetch run on a tools worker and come back as Anthropic blocks",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const search = searchFake();
  const page = pageFake();
  const router = await startDenoRouter({ AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY: SEARCH_KEY });
  const engine = new ToolUsingEngine();
  const gpu = startWorker(router, engine, { key: router.keys.admin });
  const client = new Anthropic({ apiKey: router.keys.api, baseURL: router.url, maxRetries: 0 });
  const forcedSearch = {
    model: "claude-sonnet-5",
    max_tokens: 1024,
    messages: [{ role: "user" as const, content: JSON.stringify({ query: "auxot" }) }],
    tools: [WEB_SEARCH],
    tool_choice: { type: "tool" as const, name: "web_search" },
  };
  let tools: Awaited<ReturnType<typeof startToolsWorker>> | undefined;
  try {
    await t.step("refused with a 400 invalid_request_error while no tools worker serves web_search", async () => {
      const error = await client.messages.create(forcedSearch).catch((e) => e);
      assert.ok(error instanceof Anthropic.BadRequestError, String(error));
      assert.equal((error.error as { error?: { type?: string } })?.error?.type, "invalid_request_error");
      assert.match(error.message, /tools\.0: the web_search_20250305 server tool is not available/);
    });

    tools = await startToolsWorker([
      "--tools-key",
      router.keys.tools,
      "--router-url",
      router.url,
      "--builtins",
      "web_search,web_fetch",
      "--web-search-url",
      `${search.url}/res/v1/web/search`,
      "--fetch-allow",
      `127.0.0.1:${page.port}`,
    ]);
    await waitForTools(router.url, router.keys.api, ["web_search", "web_fetch"]);

    let firstAnswer: Anthropic.Message | undefined;
    await t.step("non-streaming: server_tool_use, web_search_tool_result, then the answer", async () => {
      const message = await client.messages.create(forcedSearch);
      firstAnswer = message;
      const types = message.content.map((b) => b.type);
      assert.deepEqual(types, ["text", "server_tool_use", "web_search_tool_result", "text"]);
      const [intro, use, result, answer] = message.content;
      assert.equal(intro.type === "text" && intro.text, "Let me check.");
      assert.ok(use.type === "server_tool_use");
      assert.match(use.id, /^srvtoolu_/);
      assert.equal(use.name, "web_search");
      assert.deepEqual(use.input, { query: "auxot" });
      assert.ok(result.type === "web_search_tool_result");
      assert.equal(result.tool_use_id, use.id);
      assert.ok(Array.isArray(result.content));
      // blocked_domains removed the blocked.example hit.
      assert.deepEqual(result.content.map((r) => [r.type, r.title, r.url, r.page_age]), [
        ["web_search_result", "Auxot router for auxot", "https://auxot.example/docs", "3 days ago"],
        ["web_search_result", "Second", "https://docs.example/second", null],
      ]);
      for (const r of result.content) assert.match(r.encrypted_content, /^auxot1\.[A-Za-z0-9_-]+$/);
      assert.ok(answer.type === "text");
      assert.match(answer.text, /^result: 1\. Auxot router for auxot\n {3}https:\/\/auxot\.example\/docs/);
      assert.ok(!answer.text.includes("blocked.example"), "the model did not read the blocked hit");
      assert.equal(message.stop_reason, "end_turn");
      assert.deepEqual(message.usage.server_tool_use, { web_search_requests: 1, web_fetch_requests: 0 });
      // user_location's country reached the search; the GPU worker never saw a server tool declaration.
      assert.equal(new URL(search.requests.at(-1)!.url).searchParams.get("country"), "DE");
      const job = engine.jobs.at(-1)!;
      assert.equal("serverTools" in job.request, false);
      assert.ok(job.request.tools.some((tool) => tool.name === "web_search"));
    });

    await t.step("streaming: the same blocks in Anthropic's event order", async () => {
      const stream = client.messages.stream(forcedSearch);
      const starts: string[] = [];
      for await (const event of stream) {
        if (event.type === "content_block_start") starts.push(event.content_block.type);
      }
      const message = await stream.finalMessage();
      assert.deepEqual(starts, ["text", "server_tool_use", "web_search_tool_result", "text"]);
      assert.deepEqual(message.content.map((b) => b.type), starts);
      const use = message.content[1];
      assert.ok(use.type === "server_tool_use");
      assert.deepEqual(use.input, { query: "auxot" }, "the input arrives as input_json_delta");
      const result = message.content[2];
      assert.ok(result.type === "web_search_tool_result" && Array.isArray(result.content));
      assert.equal(result.content.length, 2);
      assert.deepEqual(message.usage.server_tool_use, { web_search_requests: 1, web_fetch_requests: 0 });
    });

    await t.step("the blocks sent back in the next turn reach the model as the text it read", async () => {
      const readThen = engine.jobs.at(-1)!.request.messages.find((m) => m.role === "tool")!;
      await client.messages.create({
        model: "claude-sonnet-5",
        max_tokens: 64,
        messages: [
          forcedSearch.messages[0],
          { role: "assistant", content: firstAnswer!.content },
          { role: "user", content: "echo thanks" },
        ],
        tools: [WEB_SEARCH],
      });
      const messages = engine.jobs.at(-1)!.request.messages;
      assert.deepEqual(messages.map((m) => m.role), ["user", "assistant", "tool", "assistant", "user"]);
      const call = messages[1].role === "assistant" ? messages[1].toolCalls?.[0] : undefined;
      assert.equal(call?.name, "web_search");
      assert.deepEqual(messages[2], { ...readThen, toolCallId: call?.id });
    });

    await t.step("max_uses: the call past the limit is not run and reads max_uses_exceeded", async () => {
      const before = search.requests.length;
      const message = await client.messages.create({
        model: "claude-sonnet-5",
        max_tokens: 64,
        messages: [{ role: "user", content: 'always web_search {"query":"again"}' }],
        tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 1 }],
      });
      const results = message.content.filter((b) => b.type === "web_search_tool_result");
      assert.ok(results.length >= 2);
      assert.ok(Array.isArray(results[0].content));
      assert.deepEqual(results[1].content, { type: "web_search_tool_result_error", error_code: "max_uses_exceeded" });
      assert.equal(search.requests.length - before, 1, "one search ran");
      assert.equal(message.usage.server_tool_use?.web_search_requests, 1);
    });

    await t.step(
      "arguments that are not a JSON object: the call is shown failing with invalid_tool_input",
      async () => {
        const before = search.requests.length;
        const message = await client.messages.create({ ...forcedSearch, messages: [{ role: "user", content: "[1]" }] });
        const result = message.content.find((b) => b.type === "web_search_tool_result");
        assert.deepEqual(result?.type === "web_search_tool_result" && result.content, {
          type: "web_search_tool_result_error",
          error_code: "invalid_tool_input",
        });
        assert.equal(search.requests.length, before);
        assert.deepEqual(message.usage.server_tool_use, { web_search_requests: 0, web_fetch_requests: 0 });
      },
    );

    await t.step(
      "web_fetch_20250910: the page as a document; a domain outside allowed_domains is refused",
      async () => {
        const tool: Anthropic.WebFetchTool20250910 = {
          type: "web_fetch_20250910",
          name: "web_fetch",
          allowed_domains: ["127.0.0.1"],
        };
        const fetched = await client.messages.create({
          model: "claude-sonnet-5",
          max_tokens: 64,
          messages: [{ role: "user", content: JSON.stringify({ url: `${page.url}/hello` }) }],
          tools: [tool],
          tool_choice: { type: "tool", name: "web_fetch" },
        });
        assert.deepEqual(fetched.content.map((b) => b.type), [
          "text",
          "server_tool_use",
          "web_fetch_tool_result",
          "text",
        ]);
        const result = fetched.content[2];
        assert.ok(result.type === "web_fetch_tool_result");
        const content = result.content as unknown as {
          type: string;
          url: string;
          retrieved_at: string;
          content: { type: string; source: { type: string; data: string } };
        };
        assert.equal(content.type, "web_fetch_result");
        assert.equal(content.url, `${page.url}/hello`);
        assert.equal(content.content.type, "document");
        assert.match(content.content.source.data, /Hello page/);
        assert.ok(!Number.isNaN(Date.parse(content.retrieved_at)));
        assert.deepEqual(fetched.usage.server_tool_use, { web_search_requests: 0, web_fetch_requests: 1 });

        const before = page.requests.length;
        const refused = await client.messages.create({
          model: "claude-sonnet-5",
          max_tokens: 64,
          messages: [{ role: "user", content: JSON.stringify({ url: "https://elsewhere.example/" }) }],
          tools: [tool],
          tool_choice: { type: "tool", name: "web_fetch" },
        });
        const error = refused.content.find((b) => b.type === "web_fetch_tool_result");
        assert.deepEqual(error?.type === "web_fetch_tool_result" && error.content, {
          type: "web_fetch_tool_result_error",
          error_code: "url_not_allowed",
        });
        assert.equal(page.requests.length, before);
      },
    );
  } finally {
    await tools?.stop();
    await gpu.stop();
    await router.close();
    await search.close();
    await page.close();
  }
});
