/**
 * The Claude Code compatibility matrix: the pinned CLI (2.1.197) and the current one (2.1.332, its native binary run
 * directly from the platform package, since npm did not run its postinstall), each in `-p` mode against the router,
 * offline:
 * - a plain turn and a resumed session (`--resume`) on a real GPU worker with a tiny model: the resumed turn
 *   reports cache reads;
 * - a turn over the context limit (a worker with a 4,096-token context, Claude Code's default ~20k-token prompt):
 *   Claude Code shows its own "Prompt is too long" message, not an API error;
 * - a forced WebSearch: a scripted model calls Claude Code's WebSearch tool; the CLI then asks the router for a
 *   `web_search_20250305` server tool, which runs on a real tools worker backed by a local search fake, and the
 *   results come back through the CLI into the answer.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "../../workers/common/engine.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { eventually, type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { startToolsWorker, waitForTools } from "../tools/helpers.ts";
import { SEARCH_KEY, searchFake } from "./search-fake.ts";
import { CURRENT_CLAUDE, PINNED_CLAUDE, runClaude } from "../helpers/claude-cli.ts";

const VERSIONS = [PINNED_CLAUDE, CURRENT_CLAUDE];

interface CliRun {
  code: number;
  lines: Record<string, unknown>[];
  result: Record<string, unknown>;
  output: string;
}

async function claude(
  binary: string,
  prompt: string,
  args: string[],
  router: RouterTarget,
  home: string,
): Promise<CliRun> {
  // The prompt right after -p: list flags such as --allowedTools take every word after them.
  const out = await runClaude(
    binary,
    ["-p", prompt, "--output-format", "stream-json", "--verbose", "--model", "sonnet", ...args],
    home,
    { ANTHROPIC_BASE_URL: router.url, ANTHROPIC_API_KEY: router.keys.api },
  );
  const output = `exit ${out.code}\n${out.stdout.slice(-3000)}\n${out.stderr.slice(-2000)}`;
  const lines = out.lines;
  const result = lines.find((l) => l.type === "result");
  assert.ok(result, `no result line; ${output}`);
  return { code: out.code, lines, result, output };
}

/** The POST /v1/messages requests the router answered since `from` (its request log lines). */
function messageRequests(router: RouterTarget, from: number): { status: number }[] {
  return router.logs.slice(from).map((l) => JSON.parse(l))
    .filter((l) => l.msg === "request" && l.method === "POST" && l.path === "/v1/messages");
}

async function tinyModelFleet(dir: string, ctx: number, eosBias = 2) {
  const modelPath = join(dir, `tiny-${ctx}-${eosBias}.gguf`);
  // The tiny model ends its turns by itself (eosBias), since Claude Code asks for up to 64,000 tokens.
  await writeTinyGguf(modelPath, { eosBias, ctx, layers: 1, nEmbd: 32, heads: 2 });
  const router = await startDenoRouter({ AUXOT_CTX_SIZE: String(ctx), AUXOT_MAX_PARALLEL: "1" });
  const worker = spawnGpuWorker(router, modelPath);
  await eventually(
    async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
    60_000,
    "the worker",
  );
  return { router, close: async () => (await worker.stop(), await router.close()) };
}

/**
 * The model for the WebSearch turn: calls Claude Code's WebSearch tool (first loading it with ToolSearch where the
 * CLI defers it, as 2.1.332 does), then — inside the CLI's own search request — the web_search server tool, and
 * answers from the tool results it was given. The router also offers its tools workers' web_search to every
 * request on its own; this model never calls that one in the main conversation.
 */
class WebSearchModel extends ScriptedEngine {
  override run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat" || job.mode === "count_tokens") return super.run(job, sink, signal);
    this.received.push(job);
    const request = job.request;
    const last = request.messages.at(-1);
    sink.emit({ type: "start", model: "web-search-model", promptTokens: 100 });
    const call = (name: string, args: unknown) => {
      sink.emit({ type: "tool_call", index: 0, id: `call_${job.id.slice(0, 8)}`, name });
      sink.emit({ type: "tool_args", index: 0, delta: JSON.stringify(args) });
      sink.emit({ type: "done", finishReason: "tool_calls" });
    };
    const offered = (name: string) => request.tools.some((t) => t.name === name) && request.toolChoice !== "none";
    const called = (name: string) =>
      request.messages.filter((m) => m.role === "assistant" && m.toolCalls?.some((c) => c.name === name)).length;
    const searched = called("WebSearch") > 0 || called("web_search") > 0;
    if (last?.role === "tool" && searched) {
      const text = last.content.map((p) => p.type === "text" ? p.text : "").join("");
      sink.emit({ type: "text", text: `result: ${text.slice(0, 4000)}` });
      sink.emit({ type: "done", finishReason: "stop" });
    } else if (offered("WebSearch")) call("WebSearch", { query: "auxot router" });
    else if (offered("ToolSearch") && called("ToolSearch") < 2) call("ToolSearch", { query: "select:WebSearch" });
    else if (request.tools.length === 1 && offered("web_search")) call("web_search", { query: "auxot router" });
    else {
      sink.emit({ type: "text", text: "ok" });
      sink.emit({ type: "done", finishReason: "stop" });
    }
    return Promise.resolve();
  }
}

for (const { version, binary } of VERSIONS) {
  Deno.test({ name: `Claude Code ${version} matrix`, sanitizeOps: false, sanitizeResources: false }, async (t) => {
    const home = await mkdtemp(join(tmpdir(), `auxot-cc-${version}-`));
    try {
      const fleet = await tinyModelFleet(home, 131_072);
      try {
        let sessionId = "";
        await t.step("plain turn", async () => {
          const run = await claude(binary, "Say hello.", [], fleet.router, home);
          assert.equal(run.result.is_error, false, run.output);
          assert.equal(run.code, 0);
          sessionId = String(run.result.session_id);
        });
        await t.step("resumed session: the second turn is read from the KV cache", async () => {
          const before = fleet.router.logs.length;
          const run = await claude(binary, "And again.", ["--resume", sessionId], fleet.router, home);
          assert.equal(run.result.is_error, false, run.output);
          const usage = run.result.usage as { cache_read_input_tokens: number; input_tokens: number };
          assert.ok(usage.cache_read_input_tokens > 0, JSON.stringify(usage));
          for (const r of messageRequests(fleet.router, before)) assert.ok(r.status < 400, JSON.stringify(r));
          console.log(`${version} resumed turn usage: ${JSON.stringify(usage)}`);
        });
      } finally {
        await fleet.close();
      }

      const small = await tinyModelFleet(home, 4096);
      try {
        await t.step("a turn over the context: Claude Code's own too-long message, not an API error", async () => {
          const before = small.router.logs.length;
          const run = await claude(binary, "Say hello.", ["--no-session-persistence"], small.router, home);
          const text = String(run.result.result ?? "");
          const requests = messageRequests(small.router, before);
          console.log(
            `${version} over the context: ${requests.length} request(s) ${
              JSON.stringify(requests.map((r) => r.status))
            }; result ${JSON.stringify(text.slice(0, 300))}; is_error ${run.result.is_error}`,
          );
          assert.ok(requests.length >= 1 && requests.every((r) => r.status === 400));
          assert.match(text, /^Prompt is too long/, run.output);
          assert.doesNotMatch(text, /API Error/);
        });
      } finally {
        await small.close();
      }

      const mid = await tinyModelFleet(home, 16_384, 0.5);
      try {
        await t.step(
          "a session that outgrows the context: Claude Code compacts or says it is too long, never an API error",
          async () => {
            // 800 words are ~3,000 tokens here: the fifth or sixth turn no longer fits 16,384.
            const words = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(" ");
            const bare = ["--bare", "--tools", ""];
            let session: string[] = [];
            const before = mid.router.logs.length;
            let compacted = false;
            let reacted = false;
            for (const tag of ["a", "b", "c", "d", "e", "f", "g", "h"]) {
              const run = await claude(binary, `Remember: ${words(800, tag)}`, [...bare, ...session], mid.router, home);
              session = ["--resume", String(run.result.session_id)];
              const text = String(run.result.result ?? "");
              assert.doesNotMatch(text, /API Error/, run.output);
              const statuses = run.lines.filter((l) => l.type === "system" && l.subtype === "status");
              const compaction = statuses.find((l) => l.compact_result !== undefined)?.compact_result;
              console.log(
                `${version} turn ${tag}: compaction ${compaction ?? "none"}; is_error ${run.result.is_error}`,
              );
              // Claude Code recognised the overflow: it compacted (or tried to), or said so in its own words. Whether a
              // compaction succeeds is the tiny random model's doing (an empty summary fails it), not the router's.
              if (compaction !== undefined) reacted = true;
              if (run.result.is_error) {
                assert.match(text, /Prompt is too long|compact/i, run.output);
                reacted = true;
              }
              if (compaction === "success" && run.result.is_error === false) {
                compacted = true;
                break;
              }
            }
            const statuses = messageRequests(mid.router, before).map((r) => r.status);
            console.log(
              `${version} outgrown session: requests ${JSON.stringify(statuses)}; compacted and went on: ${compacted}`,
            );
            assert.ok(
              reacted,
              "Claude Code compacted, or said the prompt is too long, after Auxot's 'prompt is too long'",
            );
            assert.ok(statuses.includes(400));
          },
        );
      } finally {
        await mid.close();
      }

      await t.step("a forced WebSearch runs web_search_20250305 on a tools worker", async () => {
        const search = searchFake();
        const router = await startDenoRouter({ AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY: SEARCH_KEY });
        const model = new WebSearchModel();
        const gpu = startWorker(router, model, { key: router.keys.admin });
        const tools = await startToolsWorker([
          "--tools-key",
          router.keys.tools,
          "--router-url",
          router.url,
          "--builtins",
          "web_search",
          "--web-search-url",
          `${search.url}/res/v1/web/search`,
        ]);
        try {
          await waitForTools(router.url, router.keys.api, ["web_search"]);
          const before = router.logs.length;
          const run = await claude(
            binary,
            "Search the web for auxot.",
            ["--no-session-persistence", "--allowedTools", "WebSearch"],
            router,
            home,
          );
          assert.equal(run.result.is_error, false, run.output);
          for (const r of messageRequests(router, before)) assert.ok(r.status < 400, JSON.stringify(r));
          assert.ok(search.requests.length >= 1, "the search backend was asked");
          // The server tool ran inside the CLI's own search request, and its results reached the main model.
          const searchJob = model.received.find((job) =>
            job.request.tools.length === 1 && job.request.tools[0].name === "web_search"
          );
          const seen = model.received.map((job) => ({
            tools: job.request.tools.map((tool) => tool.name).join(","),
            last: JSON.stringify(job.request.messages.at(-1)).slice(0, 300),
          }));
          assert.ok(searchJob, `the CLI's search request declared only web_search; jobs: ${JSON.stringify(seen)}`);
          assert.ok(
            model.received.some((job) => job.request.tools.some((tool) => tool.name === "WebSearch")),
            "the main request offered WebSearch",
          );
          assert.match(String(run.result.result), /auxot\.example\/docs/, run.output);
          console.log(`${version} WebSearch request: ${JSON.stringify(searchJob.request.messages).slice(0, 600)}`);
        } finally {
          await tools.stop();
          await gpu.stop();
          await router.close();
          await search.close();
        }
      });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
}
