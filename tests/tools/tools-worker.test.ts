/**
 * The tools worker as a real process (workers/tools/main.ts) against a real router, driven over
 * POST /v1/tools/execute: start-up errors, credential routing, web_fetch (local pages, refusals, redirects),
 * web_search (a local server speaking Brave's API), code_executor limits, and AUXOT_ALLOWED_TOOLS.
 */
import assert from "node:assert/strict";
import { startDenoRouter, startWorker } from "../helpers/router.ts";
import {
  executeTool,
  fixtureServer,
  recordingProxy,
  startToolsWorker,
  ToolUsingEngine,
  waitForTools,
} from "./helpers.ts";

const test = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false }, fn);

async function runMain(args: string[]): Promise<{ code: number; text: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "workers/tools/main.ts", ...args],
    clearEnv: true,
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text };
}

test("tools worker: a missing router URL or key, or the wrong key kind, is a clear start-up error", async () => {
  const noUrl = await runMain(["--tools-key", "tls_x"]);
  assert.equal(noUrl.code, 2);
  assert.match(noUrl.text, /No router URL: pass --router-url/);
  const noKey = await runMain(["--router-url", "http://127.0.0.1:9"]);
  assert.equal(noKey.code, 2);
  assert.match(
    noKey.text,
    /No tools key: pass --tools-key-file FILE \(a file holding tls_\.\.\., mode 600\) or set AUXOT_TOOLS_KEY/,
  );
  const wrongKind = await runMain(["--router-url", "http://127.0.0.1:9", "--tools-key", "adm_abc"]);
  assert.equal(wrongKind.code, 2);
  assert.match(wrongKind.text, /must be a tools key/);
  const badBuiltin = await runMain(["--router-url", "http://127.0.0.1:9", "--tools-key", "tls_a", "--builtins", "x"]);
  assert.match(badBuiltin.text, /unknown tool "x"/);
});

test("tools worker: a router without AUXOT_TOOLS_KEY_HASH refuses it, and it exits", async () => {
  const router = await startDenoRouter({ AUXOT_TOOLS_KEY_HASH: "" });
  const worker = await startToolsWorker(["--tools-key", router.keys.tools, "--router-url", router.url]);
  try {
    const status = await worker.status;
    assert.equal(status.code, 1);
    assert.match(worker.output(), /Tools workers are not enabled on this router \(AUXOT_TOOLS_KEY_HASH is not set\)/);
  } finally {
    await worker.stop();
    await router.close();
  }
});

const SECRETS = {
  AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY: "brave-secret-1234",
  AUXOT_TOOLS_WEB_FETCH__TOKEN: "fetch-secret-5678",
  AUXOT_TOOLS_CODE_EXECUTOR__UNUSED: "code-secret-9012",
};

test("tools worker: built-in tools end to end, credentials routed per tool, limits end in clean errors", async (t) => {
  // The private server web_fetch must never reach (not on the allow-list).
  const secret = fixtureServer(() => new Response("TOP SECRET"));
  const web = fixtureServer((request) => {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/page":
        return new Response(
          `<html><head><title>Fixture</title></head><body><main><h1>Local page</h1><p>Hello from the ` +
            `<a href="/other">fixture</a>.</p><script>secret()</script></main></body></html>`,
          { headers: { "content-type": "text/html; charset=utf-8" } },
        );
      case "/data.json":
        return Response.json({ answer: 42 });
      case "/long":
        return new Response("abcdefghij".repeat(3_000), { headers: { "content-type": "text/plain" } });
      case "/redirect-ok":
        return Response.redirect(`${url.origin}/page`, 302);
      case "/redirect-private":
        return Response.redirect(`${secret.url}/secret`, 302);
      case "/redirect-localhost":
        return Response.redirect(`http://localhost:${secret.port}/secret`, 301);
      case "/binary":
        return new Response(new Uint8Array([0, 1, 2]), { headers: { "content-type": "application/octet-stream" } });
      default:
        return new Response("not here", { status: 404, headers: { "content-type": "text/plain" } });
    }
  });
  const brave = fixtureServer((request) => {
    const url = new URL(request.url);
    if (url.searchParams.get("q") === "forbidden") return new Response("{}", { status: 401 });
    return Response.json({
      type: "search",
      query: { original: url.searchParams.get("q") },
      web: {
        type: "search",
        results: [
          {
            title: "Deno <strong>docs</strong>",
            url: "https://docs.deno.com/",
            description: "The <strong>Deno</strong> manual",
          },
          { title: "Second", url: "https://example.com/2", description: "Another result", age: "2 days ago" },
        ],
      },
    });
  });
  const router = await startDenoRouter(SECRETS);
  const proxy = recordingProxy(router.url);
  const worker = await startToolsWorker([
    "--tools-key",
    router.keys.tools,
    "--router-url",
    proxy.url,
    "--fetch-allow",
    `127.0.0.1:${web.port}`,
    "--web-search-url",
    `${brave.url}/res/v1/web/search`,
    "--code-timeout",
    "3s",
    "--code-memory-mb",
    "64",
    "--code-max-output",
    "4096",
  ]);
  const api = router.keys.api;
  const run = (name: string, args: Record<string, unknown>) => executeTool(router.url, api, name, args);
  try {
    await t.step("the tools and their JSON schemas are listed", async () => {
      const listed = await waitForTools(router.url, api, ["web_search", "web_fetch", "code_executor"]);
      assert.deepEqual(listed, ["code_executor", "web_fetch", "web_search"]);
      const response = await fetch(`${router.url}/api/tools/v1/tools`, { headers: { authorization: `Bearer ${api}` } });
      const body = await response.json();
      const fetchTool = body.data.find((t: { name: string }) => t.name === "web_fetch");
      assert.equal(fetchTool.parameters.type, "object");
      assert.deepEqual(fetchTool.parameters.required, ["url"]);
      assert.ok(fetchTool.description.length > 20);
      const unauthenticated = await fetch(`${router.url}/v1/tools`);
      assert.equal(unauthenticated.status, 401);
    });

    await t.step("web_fetch: an allowed local page becomes Markdown; JSON and long text come as text", async () => {
      const page = await run("web_fetch", { url: `${web.url}/page` });
      assert.equal(page.status, 200);
      assert.equal(page.body.is_error, false);
      assert.match(page.body.content!, /Title: Fixture/);
      assert.match(page.body.content!, /# Local page/);
      assert.match(page.body.content!, new RegExp(`\\[fixture\\]\\(${web.url}/other\\)`));
      assert.ok(!page.body.content!.includes("secret()"));
      const data = await run("web_fetch", { url: `${web.url}/data.json` });
      assert.match(data.body.content!, /\{"answer":42\}/);
      const long = await run("web_fetch", { url: `${web.url}/long`, max_length: 1000, start_index: 5 });
      assert.match(long.body.content!, /\nfghijabcde/);
      assert.match(long.body.content!, /\[truncated: 28995 more characters; call again with start_index=1005\]/);
      const followed = await run("web_fetch", { url: `${web.url}/redirect-ok` });
      assert.match(followed.body.content!, new RegExp(`URL: ${web.url}/page`));
    });

    await t.step("web_fetch refuses private addresses, also behind redirects and names, and bad input", async () => {
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ url: `${secret.url}/secret` }, /refused to fetch 127\.0\.0\.1:\d+: it resolves to 127\.0\.0\.1, a loopback/],
        [{ url: `${web.url}/redirect-private` }, /refused to fetch 127\.0\.0\.1:\d+/],
        [{ url: `${web.url}/redirect-localhost` }, /refused to fetch localhost:\d+/],
        [{ url: "http://169.254.169.254/latest/meta-data/" }, /link-local address \(cloud metadata/],
        [{ url: "http://[::ffff:10.0.0.1]/" }, /a private address/],
        [{ url: "file:///etc/passwd" }, /only http and https/],
        [{ url: "not a url" }, /is not an absolute URL/],
        [{ url: `${web.url}/binary` }, /application\/octet-stream, not a text or HTML page/],
        [{ url: `${web.url}/missing` }, /answered HTTP 404/],
        [{ nope: 1 }, /Invalid arguments for web_fetch: url: .*; arguments: Unrecognized key: "nope"/],
      ];
      for (const [args, message] of cases) {
        const result = await run("web_fetch", args);
        assert.equal(result.status, 200, JSON.stringify(args));
        assert.equal(result.body.is_error, true, JSON.stringify(args));
        assert.match(result.body.content!, message);
      }
      assert.equal(secret.requests.length, 0, "the private server was never contacted");
    });

    await t.step("web_search speaks Brave's API with the router's key; errors are tool errors", async () => {
      const result = await run("web_search", { query: "deno manual", count: 2 });
      assert.equal(result.body.is_error, false);
      assert.match(result.body.content!, /^1\. Deno docs\n {3}https:\/\/docs\.deno\.com\/\n {3}The Deno manual/);
      assert.match(result.body.content!, /2\. Second\n.*\n.*\n {3}\(2 days ago\)/);
      const request = brave.requests.at(-1)!;
      const url = new URL(request.url);
      assert.equal(url.pathname, "/res/v1/web/search");
      assert.equal(url.searchParams.get("q"), "deno manual");
      assert.equal(url.searchParams.get("count"), "2");
      assert.equal(request.headers.get("x-subscription-token"), SECRETS.AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY);
      const refused = await run("web_search", { query: "forbidden" });
      assert.equal(refused.body.is_error, true);
      assert.match(refused.body.content!, /rejected the API key/);
      const invalid = await run("web_search", { count: 3 });
      assert.match(invalid.body.content!, /Invalid arguments for web_search: query/);
    });

    await t.step("credentials: each tool job carries its own tool's credentials only", () => {
      const jobs = proxy.polls.flatMap((p) => (p as { jobs: { tool: string; credentials: unknown }[] }).jobs);
      const byTool = (tool: string) => jobs.filter((j) => j.tool === tool).map((j) => j.credentials);
      assert.ok(byTool("web_search").length >= 1);
      for (const c of byTool("web_search")) {
        assert.deepEqual(c, { BRAVE_SEARCH_API_KEY: SECRETS.AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY });
      }
      for (const c of byTool("web_fetch")) assert.deepEqual(c, { TOKEN: SECRETS.AUXOT_TOOLS_WEB_FETCH__TOKEN });
      // The fetched pages never saw another tool's secret.
      for (const request of web.requests) {
        const headers = JSON.stringify([...request.headers.entries()]);
        for (const value of Object.values(SECRETS)) assert.ok(!headers.includes(value));
      }
    });

    await t.step("code_executor runs JavaScript and TypeScript; errors are tool errors", async () => {
      const js = await run("code_executor", {
        code: "const xs = [1, 2, 3];\nconsole.log(xs.map((x) => x * 14).join(','))",
      });
      assert.deepEqual(js.body, { name: "code_executor", content: "14,28,42\n", is_error: false });
      const ts = await run("code_executor", {
        code: "const n: number = await Promise.resolve(6); console.log(n * 7)",
        language: "typescript",
      });
      assert.equal(ts.body.content, "42\n");
      const thrown = await run("code_executor", { code: "console.log('before'); throw new Error('boom')" });
      assert.equal(thrown.body.is_error, true);
      assert.match(thrown.body.content!, /The code failed \(exit code 1\)[\s\S]*before[\s\S]*Error: boom/);
    });

    await t.step("code_executor has no network, no file system, and cannot load local modules", async () => {
      const net = await run("code_executor", { code: `await fetch(${JSON.stringify(web.url + "/page")})` });
      assert.equal(net.body.is_error, true);
      assert.match(net.body.content!, /NotCapable: Requires net access/);
      const read = await run("code_executor", { code: `console.log(Deno.readTextFileSync("/etc/hostname"))` });
      assert.match(read.body.content!, /NotCapable: Requires read access/);
      const env = await run("code_executor", { code: `console.log(Deno.env.get("PATH"))` });
      assert.match(env.body.content!, /NotCapable: Requires env access/);
      const spawn = await run("code_executor", { code: `new Deno.Command("/bin/sh").outputSync()` });
      assert.match(spawn.body.content!, /NotCapable: Requires run access/);
      const module = await run("code_executor", {
        code: `const m = await import("file:///etc/hostname", { with: { type: "text" } }); console.log(m)`,
      });
      assert.equal(module.body.is_error, true);
      assert.match(module.body.content!, /modules-are-disabled\.invalid/);
      assert.equal(web.requests.filter((r) => new URL(r.url).pathname === "/page").length, 2, "no fetch from code");
    });

    await t.step("code_executor limits: infinite loop, memory bombs, huge output; the worker stays up", async () => {
      const loop = await run("code_executor", { code: "console.log('spinning'); while (true) {}" });
      assert.equal(loop.body.is_error, true);
      assert.match(loop.body.content!, /The code (ran longer than 3 s|used more than 3 s of CPU time) and was stopped/);
      assert.match(loop.body.content!, /spinning/);
      const heap = await run("code_executor", {
        code: "const keep = []; while (true) keep.push(new Array(1e6).fill(Math.random()));",
      });
      assert.equal(heap.body.is_error, true);
      assert.match(heap.body.content!, /more than its 64 MB memory limit/);
      const buffers = await run("code_executor", {
        code: "const keep = []; while (true) { const b = new Uint8Array(16 * 1024 * 1024); b.fill(1); keep.push(b); }",
      });
      assert.equal(buffers.body.is_error, true);
      assert.match(buffers.body.content!, /more than its 64 MB memory limit/);
      const output = await run("code_executor", { code: "while (true) console.log('x'.repeat(100));" });
      assert.equal(output.body.is_error, true);
      assert.match(output.body.content!, /printed more than 4096 bytes and was stopped/);
      assert.ok(output.body.content!.length < 4096 + 500);
      const after = await run("code_executor", { code: "console.log('still here')" });
      assert.equal(after.body.content, "still here\n");
    });

    await t.step("nothing logged a credential", () => {
      const logs = router.logs.join("\n") + worker.output();
      for (const value of Object.values(SECRETS)) assert.ok(!logs.includes(value), "a secret reached a log");
    });
  } finally {
    await worker.stop();
    await proxy.close();
    await router.close();
    await web.close();
    await secret.close();
    await brave.close();
  }
});

test("AUXOT_ALLOWED_TOOLS: only allowed tools are listed, run and routed to the worker", async () => {
  const router = await startDenoRouter({ AUXOT_ALLOWED_TOOLS: "code_executor,web_fetch" });
  const proxy = recordingProxy(router.url);
  const worker = await startToolsWorker(["--tools-key", router.keys.tools, "--router-url", proxy.url]);
  const engine = new ToolUsingEngine();
  const gpu = startWorker(router, engine, { key: router.keys.admin });
  try {
    const listed = await waitForTools(router.url, router.keys.api, ["code_executor", "web_fetch"]);
    assert.deepEqual(listed, ["code_executor", "web_fetch"]);
    // The model is offered the allowed server tools only, after the caller's own.
    const chat = await fetch(`${router.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "m",
        messages: [{ role: "user", content: "echo hi" }],
        tools: [{ type: "function", function: { name: "mine", parameters: { type: "object" } } }],
      }),
    });
    assert.equal((await chat.json()).choices[0].message.content, "hi");
    assert.deepEqual(engine.jobs.at(-1)!.request.tools.map((t) => t.name), ["mine", "code_executor", "web_fetch"]);
    const refused = await executeTool(router.url, router.keys.api, "web_search", { query: "x" });
    assert.equal(refused.status, 404);
    assert.match(refused.body.error!.message, /No server tool named 'web_search' is available \(available: code_/);
    const allowed = await executeTool(router.url, router.keys.api, "code_executor", { code: "console.log(1)" });
    assert.equal(allowed.body.content, "1\n");
    // The worker offers web_search, but the router never handed it such a job (it claims only allowed lanes).
    assert.ok(proxy.polls.length > 0);
    for (const poll of proxy.polls as { jobs: { tool: string }[] }[]) {
      for (const job of poll.jobs) assert.notEqual(job.tool, "web_search");
    }
    const bad = await fetch(`${router.url}/v1/tools/execute`, {
      method: "POST",
      headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ arguments: {} }),
    });
    assert.equal(bad.status, 400);
  } finally {
    await gpu.stop();
    await worker.stop();
    await proxy.close();
    await router.close();
  }
});
