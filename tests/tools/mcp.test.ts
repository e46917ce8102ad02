/**
 * MCP both ways, with the official SDK on the other side: a real tools worker offering the tools of an MCP
 * server over stdio and one over Streamable HTTP (both built with @modelcontextprotocol/sdk), and the router's
 * own MCP endpoint used by the SDK's client.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client";
// The SDK's wildcard exports give types only to extension-less paths and code only to `.js` ones.
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";
import { startDenoRouter } from "../helpers/router.ts";
import { executeTool, fixtureServer, startToolsWorker, waitForTools } from "./helpers.ts";

const MCP_TOKEN = "mcp-token-31337";

/** A stateless Streamable HTTP MCP server on 127.0.0.1 that wants a bearer token. */
function httpMcpServer() {
  return fixtureServer(async (request) => {
    if (request.headers.get("authorization") !== `Bearer ${MCP_TOKEN}`) {
      return new Response("unauthorized", { status: 401 });
    }
    const server = new McpServer({ name: "fixture-http", version: "1.0.0" });
    server.registerTool(
      "echo",
      { description: "Echo the text back", inputSchema: { text: z.string() } },
      ({ text }) => ({ content: [{ type: "text", text: `echo: ${text}` }] }),
    );
    server.registerTool(
      "files.read",
      { description: "A name with a dot", inputSchema: { path: z.string() } },
      ({ path }) => ({ content: [{ type: "text", text: `read ${path}` }] }),
    );
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    return await transport.handleRequest(request);
  });
}

Deno.test({
  name: "MCP: a tools worker offers stdio and HTTP MCP servers' tools; the router's MCP endpoint serves them",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const remote = httpMcpServer();
  const dir = await Deno.makeTempDir({ prefix: "auxot-mcp-test-" });
  const configPath = `${dir}/mcp.json`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      mcpServers: {
        local: {
          command: Deno.execPath(),
          args: ["run", "-A", fileURLToPath(new URL("./fixtures/mcp-stdio-server.ts", import.meta.url))],
          env: { FIXTURE_GREETING: "${TEST_GREETING}", NO_COLOR: "1" },
        },
        remote: { type: "http", url: `${remote.url}/mcp`, headers: { authorization: "Bearer ${TEST_MCP_TOKEN}" } },
      },
    }),
  );
  const router = await startDenoRouter();
  const worker = await startToolsWorker(
    ["--tools-key", router.keys.tools, "--router-url", router.url, "--builtins", "none", "--mcp-config", configPath],
    { TEST_GREETING: "hello from the config", TEST_MCP_TOKEN: MCP_TOKEN },
  );
  const api = router.keys.api;
  const names = [
    "mcp__local__add",
    "mcp__local__fail",
    "mcp__local__greeting",
    "mcp__remote__echo",
    "mcp__remote__files_read",
  ];
  try {
    await t.step("the tools are listed under namespaced names with their real schemas", async () => {
      assert.deepEqual(await waitForTools(router.url, api, names), names);
      const body = await (await fetch(`${router.url}/v1/tools`, { headers: { authorization: `Bearer ${api}` } }))
        .json();
      const add = body.data.find((tool: { name: string }) => tool.name === "mcp__local__add");
      assert.equal(add.description, "Add two numbers");
      assert.equal(add.parameters.type, "object");
      assert.deepEqual(add.parameters.properties.b, { type: "number", description: "the second one" });
      assert.deepEqual([...add.parameters.required].sort(), ["a", "b"]);
    });

    await t.step("calls reach the right server and tool; MCP errors are tool errors", async () => {
      const add = await executeTool(router.url, api, "mcp__local__add", { a: 2, b: 3 });
      assert.deepEqual(add.body, { name: "mcp__local__add", content: "5", is_error: false });
      const greeting = await executeTool(router.url, api, "mcp__local__greeting", {});
      assert.equal(greeting.body.content, "hello from the config");
      const fail = await executeTool(router.url, api, "mcp__local__fail", {});
      assert.deepEqual(fail.body, { name: "mcp__local__fail", content: "it broke", is_error: true });
      const invalid = await executeTool(router.url, api, "mcp__local__add", { a: "two" });
      assert.equal(invalid.body.is_error, true);
      const echo = await executeTool(router.url, api, "mcp__remote__echo", { text: "hi" });
      assert.equal(echo.body.content, "echo: hi");
      const dotted = await executeTool(router.url, api, "mcp__remote__files_read", { path: "/x" });
      assert.equal(dotted.body.content, "read /x");
      assert.ok(remote.requests.length > 0);
    });

    await t.step("the router's MCP endpoint, used by the official MCP client", async () => {
      for (const path of ["/mcp", "/api/tools/v1/mcp"]) {
        const client = new Client({ name: "auxot-test", version: "1.0.0" });
        await client.connect(
          new StreamableHTTPClientTransport(new URL(router.url + path), {
            requestInit: { headers: { authorization: `Bearer ${api}` } },
          }),
        );
        try {
          assert.equal(client.getServerVersion()?.name, "auxot-router");
          const { tools } = await client.listTools();
          assert.deepEqual(tools.map((tool) => tool.name).sort(), names);
          assert.equal(tools.find((tool) => tool.name === "mcp__local__add")?.inputSchema.type, "object");
          const sum = await client.callTool({ name: "mcp__local__add", arguments: { a: 20, b: 22 } });
          assert.deepEqual(sum.content, [{ type: "text", text: "42" }]);
          assert.equal(sum.isError, false);
          const failed = await client.callTool({ name: "mcp__local__fail", arguments: {} });
          assert.equal(failed.isError, true);
          assert.deepEqual(failed.content, [{ type: "text", text: "it broke" }]);
          await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }), /Unknown tool: no_such_tool/);
          await client.ping();
        } finally {
          await client.close();
        }
      }
    });

    await t.step("the MCP endpoint wants the API key", async () => {
      const client = new Client({ name: "auxot-test", version: "1.0.0" });
      await assert.rejects(client.connect(new StreamableHTTPClientTransport(new URL(`${router.url}/mcp`))));
      await client.close();
      const wrongRole = await fetch(`${router.url}/mcp`, {
        method: "POST",
        headers: { authorization: `Bearer ${router.keys.admin}`, "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      });
      assert.equal(wrongRole.status, 401);
      await wrongRole.body?.cancel();
    });
  } finally {
    await worker.stop();
    await router.close();
    await remote.close();
    await Deno.remove(dir, { recursive: true });
  }
});
