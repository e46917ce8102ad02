/**
 * The KV cache across a real agentic Claude Code session, not just two turns. A session is recorded with the real CLI
 * (current 2.1.332, default request shape) against a scripted model that runs Bash each turn: five `-p` turns, each
 * resumed with `--resume`, each a tool call, its result and an answer — ten requests on the main conversation, with
 * the mid-conversation system reminders Claude Code inserts. The recorded requests are then replayed, byte for byte
 * with their headers, against a real GPU worker on a tiny model — once with one worker, once with two (prompt-cache
 * affinity must bring each request back to the worker holding the conversation) — and every main-conversation request
 * after the first must report at least 90% of its input tokens read from the cache.
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
import { fixtureServer } from "../tools/helpers.ts";
import { CURRENT_CLAUDE, runClaude } from "../helpers/claude-cli.ts";

const CLAUDE = CURRENT_CLAUDE.binary;
const TURNS = 5;

interface Recorded {
  headers: [string, string][];
  body: string;
}

/** The agent: runs Bash once per user turn, then answers from its result. */
class AgentModel extends ScriptedEngine {
  override run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat" || job.mode === "count_tokens") return super.run(job, sink, signal);
    const request = job.request;
    const last = request.messages.at(-1);
    sink.emit({ type: "start", model: "agent", promptTokens: 100 });
    if (last?.role === "tool") {
      const text = last.content.map((p) => p.type === "text" ? p.text : "").join("");
      sink.emit({ type: "text", text: `The command printed: ${text.trim()}` });
      sink.emit({ type: "done", finishReason: "stop" });
    } else if (request.tools.some((t) => t.name === "Bash")) {
      const turn = request.messages.filter((m) => m.role === "assistant").length;
      sink.emit({ type: "text", text: "Let me run that." });
      sink.emit({ type: "tool_call", index: 0, id: `toolu_${job.id.slice(0, 12)}`, name: "Bash" });
      sink.emit({
        type: "tool_args",
        index: 0,
        delta: JSON.stringify({ command: `echo step-${turn}`, description: "Print the step" }),
      });
      sink.emit({ type: "done", finishReason: "tool_calls" });
    } else {
      sink.emit({ type: "text", text: "ok" });
      sink.emit({ type: "done", finishReason: "stop" });
    }
    return Promise.resolve();
  }
}

async function claude(prompt: string, args: string[], baseUrl: string, apiKey: string, home: string) {
  const out = await runClaude(
    CLAUDE,
    ["-p", prompt, "--output-format", "json", "--model", "sonnet", "--allowedTools", "Bash", ...args],
    home,
    { ANTHROPIC_BASE_URL: baseUrl, ANTHROPIC_API_KEY: apiKey },
  );
  const result = JSON.parse(out.stdout.trim().split("\n").at(-1) ?? "{}");
  assert.equal(result.is_error, false, `${out.stdout.slice(-2000)}\n${out.stderr}`);
  return result as { session_id: string };
}

/** Records a session: every POST /v1/messages the CLI sends, through a proxy in front of a scripted router. */
async function recordSession(home: string): Promise<Recorded[]> {
  const router = await startDenoRouter();
  const gpu = startWorker(router, new AgentModel(), { key: router.keys.admin });
  const recorded: Recorded[] = [];
  const proxy = fixtureServer(async (request) => {
    const url = new URL(request.url);
    const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.text();
    if (request.method === "POST" && url.pathname === "/v1/messages" && body) {
      recorded.push({ headers: [...request.headers], body });
    }
    const upstream = await fetch(router.url + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body,
    });
    return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
  });
  try {
    let session: string[] = [];
    for (let turn = 1; turn <= TURNS; turn++) {
      const result = await claude(`Run step ${turn}.`, session, proxy.url, router.keys.api, home);
      session = ["--resume", result.session_id];
    }
  } finally {
    await proxy.close();
    await gpu.stop();
    await router.close();
  }
  return recorded;
}

/** The share of input tokens read from the cache, for each replayed request of the main conversation. */
async function replay(router: RouterTarget, session: Recorded[]): Promise<number[]> {
  const shares: number[] = [];
  for (const request of session) {
    const headers = new Headers(request.headers.filter(([name]) => !["host", "content-length"].includes(name)));
    headers.set("x-api-key", router.keys.api);
    const response = await fetch(`${router.url}/v1/messages?beta=true`, {
      method: "POST",
      headers,
      body: request.body,
    });
    assert.equal(response.status, 200, await response.clone().text());
    const text = await response.text();
    const usage = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)))
      .findLast((e) => e.type === "message_delta")?.usage;
    assert.ok(usage, text.slice(-500));
    const total = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
    shares.push(usage.cache_read_input_tokens / total);
  }
  return shares;
}

Deno.test({
  name: "a recorded 10-request Claude Code session replays with >= 90% of input read from the KV cache",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const home = await mkdtemp(join(tmpdir(), "auxot-cc-replay-"));
  try {
    const recorded = await recordSession(home);
    // The main conversation: the requests that offer Bash (side requests, such as titles, offer no tools).
    const session = recorded.filter((r) => {
      const body = JSON.parse(r.body);
      return (body.tools ?? []).some((tool: { name?: string }) => tool.name === "Bash");
    });
    // Each request's roles, e.g. "s u a t" (system, user, assistant, tool results in a user turn).
    const shapes = session.map((r) => {
      const messages = JSON.parse(r.body).messages as { role: string; content: unknown }[];
      return messages.map((m) =>
        m.role === "user" && Array.isArray(m.content) && m.content.some((b) => b.type === "tool_result")
          ? "t"
          : m.role[0]
      ).join("");
    });
    console.log(
      `recorded ${recorded.length} requests, ${session.length} on the main conversation: ${shapes.join(" ")}`,
    );
    assert.ok(shapes.at(-1)!.includes("t"), "tool results");
    assert.ok(shapes.at(-1)!.slice(1).includes("s"), "a system entry after the start of the conversation");
    assert.equal(session.length, 2 * TURNS);
    const modelPath = join(home, "tiny.gguf");
    await writeTinyGguf(modelPath, { eosBias: 2, ctx: 131_072, layers: 1, nEmbd: 32, heads: 2 });

    for (const workers of [1, 2]) {
      await t.step(`${workers} worker${workers > 1 ? "s" : ""}`, async () => {
        const router = await startDenoRouter({ AUXOT_CTX_SIZE: "131072", AUXOT_MAX_PARALLEL: "1" });
        const processes = Array.from({ length: workers }, () => spawnGpuWorker(router, modelPath));
        try {
          await eventually(
            async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === workers,
            90_000,
            "the workers",
          );
          const shares = await replay(router, session);
          console.log(`${workers} worker(s): cache share per request ${shares.map((s) => s.toFixed(3)).join(" ")}`);
          // With two workers, the second request arrives before the worker that ran the first polls again (its first
          // chance to advertise the conversation), and the idle worker's parked poll wakes first: it is held back only
          // because the store records the holder when a worker claims a conversation's job.
          for (const [i, share] of shares.entries()) {
            if (i >= 1) assert.ok(share >= 0.9, `request ${i + 1}: ${(share * 100).toFixed(1)}% from the cache`);
          }
        } finally {
          for (const process of processes) await process.stop();
          await router.close();
        }
      });
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
