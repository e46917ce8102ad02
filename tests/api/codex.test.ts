/**
 * The real Codex CLI (npm, pinned 0.171.0) against the router, offline, through the Responses API:
 * - a plain `codex exec` turn answered by a real GPU worker on a generated tiny model;
 * - a turn in which the model calls Codex's `exec_command` function tool and Codex runs it, then answers from the
 *   result. A tiny random model cannot choose to call a tool, so this turn is served by a scripted engine
 *   (tests/helpers/scripted-engine.ts) told to call the tool; the router, protocol and worker loop are the real ones.
 * Every request Codex made must have been accepted (no 4xx), and Codex must report `turn.completed`.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JobEvent } from "../../src/protocol/events.ts";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "../../workers/common/engine.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { eventually, type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CODEX = join(ROOT, "node_modules/.bin/codex");

async function codexHome(router: RouterTarget, model = "any", extra: string[] = []): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), "auxot-codex-"));
  await writeFile(
    join(home, "config.toml"),
    [
      `model = "${model}"`,
      ...extra,
      'model_provider = "auxot"',
      "[model_providers.auxot]",
      'name = "auxot"',
      `base_url = "${router.url}/v1"`,
      'env_key = "AUXOT_API_KEY"',
      'wire_api = "responses"',
      // Codex retries a failing request 5 times; a test wants the first failure.
      "request_max_retries = 0",
      "stream_max_retries = 0",
      "",
    ].join("\n"),
  );
  return home;
}

async function codexExec(router: RouterTarget, home: string, prompt: string, extra: string[] = []) {
  const out = await new Deno.Command(CODEX, {
    args: ["exec", "--skip-git-repo-check", "--ephemeral", "--json", "-C", home, ...extra, prompt],
    env: {
      CODEX_HOME: home,
      HOME: home,
      AUXOT_API_KEY: router.keys.api,
      PATH: Deno.env.get("PATH") ?? "",
      RUST_LOG: "error",
    },
    clearEnv: true,
    cwd: home,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const lines = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  return { code: out.code, lines, stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** Every HTTP request the router logged since `from`: Codex's requests must all have been accepted. */
function requestsSince(router: RouterTarget, from: number) {
  return router.logs.slice(from).map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
}

/** Calls one tool on the first turn; once the tool's result is back, answers with it. */
class ToolCallingEngine extends ScriptedEngine {
  constructor(readonly tool: string, readonly args: Record<string, unknown>) {
    super();
  }

  override run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") return super.run(job, sink, signal);
    const last = job.request.messages.at(-1);
    if (last?.role === "tool") {
      this.received.push(job);
      const result = last.content.map((p) => (p.type === "text" ? p.text : "")).join("");
      const events: JobEvent[] = [
        { type: "start", model: "scripted" },
        { type: "text", text: `The tool said: ${result.slice(0, 200)}` },
        { type: "usage", usage: { promptTokens: 10, completionTokens: 5, cachedTokens: 0 } },
        { type: "done", finishReason: "stop" },
      ];
      for (const event of events) sink.emit(event);
      return Promise.resolve();
    }
    const instruction = `tool ${this.tool} ${JSON.stringify(this.args)}`;
    const user = { role: "user" as const, content: [{ type: "text" as const, text: instruction }] };
    return super.run({ ...job, request: { ...job.request, messages: [...job.request.messages, user] } }, sink, signal);
  }
}

Deno.test({
  name: "Codex CLI: codex exec answers through a tiny-model GPU worker",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-codex-model-"));
  const modelPath = join(dir, "tiny.gguf");
  // The tiny model ends its turns by itself (eosBias): Codex sets no output limit.
  await writeTinyGguf(modelPath, { eosBias: 2, ctx: 131_072, layers: 1, nEmbd: 32, heads: 2 });
  const router = await startDenoRouter({ AUXOT_CTX_SIZE: "131072", AUXOT_MAX_PARALLEL: "1" });
  const worker = spawnGpuWorker(router, modelPath);
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      60_000,
      "the worker",
    );
    // An unknown model name gets Codex's default tool set; "gpt-5.5" its catalog's (custom apply_patch, tool_search).
    for (const model of ["any", "gpt-5.5"]) {
      await t.step(`model "${model}"`, async () => {
        const home = await codexHome(router, model);
        try {
          const before = router.logs.length;
          const run = await codexExec(router, home, "Say hello.");
          const completed = run.lines.find((l) => l.type === "turn.completed");
          assert.ok(
            completed,
            `no turn.completed; exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}`,
          );
          assert.equal(run.code, 0);
          assert.ok(completed.usage.input_tokens > 1000, "Codex's prompt was counted");
          const requests = requestsSince(router, before);
          assert.ok(
            requests.some((r) => r.method === "POST" && r.path === "/v1/responses"),
            "Codex reached the router",
          );
          for (const r of requests) assert.ok(r.status < 400, JSON.stringify(r));
        } finally {
          await rm(home, { recursive: true, force: true });
        }
      });
    }
  } finally {
    await worker.stop();
    await router.close();
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test({
  name: "Codex CLI: the model calls exec_command, Codex runs it and the turn completes with its result",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const router = await startDenoRouter();
  const engine = new ToolCallingEngine("exec_command", { cmd: "echo codex-ran > marker.txt && cat marker.txt" });
  const worker = startWorker(router, engine, { key: router.keys.admin });
  const home = await codexHome(router);
  try {
    const before = router.logs.length;
    const run = await codexExec(router, home, "Run the marker command.", [
      "--dangerously-bypass-approvals-and-sandbox",
    ]);
    const completed = run.lines.find((l) => l.type === "turn.completed");
    assert.ok(completed, `no turn.completed; exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}`);
    // Codex ran the command the model asked for ...
    assert.equal((await readFile(join(home, "marker.txt"), "utf8")).trim(), "codex-ran");
    const executed = run.lines.find((l) => l.type === "item.completed" && l.item?.type === "command_execution");
    assert.ok(executed, run.stdout.slice(-3000));
    // ... sent its output back as function_call_output, and the model's answer ended the turn.
    const first = engine.received[0].request;
    assert.ok(first.tools.some((t) => t.name === "exec_command"));
    assert.equal(first.conversationKey?.startsWith("h:"), true, "prompt_cache_key is the conversation key");
    const followUp = engine.received.at(-1)!.request;
    const call = followUp.messages.find((m) => m.role === "assistant" && m.toolCalls?.length);
    assert.ok(call?.role === "assistant" && call.toolCalls![0].name === "exec_command");
    const result = followUp.messages.at(-1)!;
    assert.ok(result.role === "tool" && result.toolCallId === call.toolCalls![0].id);
    const message = run.lines.find((l) => l.type === "item.completed" && l.item?.type === "agent_message");
    assert.match(message?.item.text, /^The tool said: .*codex-ran/s);
    for (const r of requestsSince(router, before)) assert.ok(r.status < 400, JSON.stringify(r));
  } finally {
    await worker.stop();
    await router.close();
    await rm(home, { recursive: true, force: true });
  }
});

Deno.test({
  name: "Codex CLI (gpt-5.5 tool set): the model calls the custom apply_patch tool and Codex applies the patch",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const router = await startDenoRouter();
  // Codex's catalog gives "gpt-5.5" its apply_patch as a `custom` tool with a Lark grammar, plus tool_search.
  const patch = "*** Begin Patch\n*** Add File: hello.txt\n+Hello from a custom tool\n*** End Patch\n";
  const engine = new ToolCallingEngine("apply_patch", { input: patch });
  const worker = startWorker(router, engine, { key: router.keys.admin });
  const home = await codexHome(router, "gpt-5.5");
  try {
    const before = router.logs.length;
    const run = await codexExec(router, home, "Create hello.txt.", ["--dangerously-bypass-approvals-and-sandbox"]);
    const completed = run.lines.find((l) => l.type === "turn.completed");
    assert.ok(completed, `no turn.completed; exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}`);
    const first = engine.received[0].request;
    const applyPatch = first.tools.find((t) => t.name === "apply_patch");
    assert.equal(applyPatch?.freeform?.syntax, "lark", "Codex declared apply_patch as a Lark-grammar custom tool");
    assert.ok(first.tools.some((t) => t.name === "tool_search"), "the client-side tool_search is offered");
    assert.equal(await readFile(join(home, "hello.txt"), "utf8"), "Hello from a custom tool\n");
    const followUp = engine.received.at(-1)!.request;
    const call = followUp.messages.find((m) => m.role === "assistant" && m.toolCalls?.length);
    assert.ok(call?.role === "assistant");
    assert.deepEqual(JSON.parse(call.toolCalls![0].arguments), { input: patch });
    assert.equal(followUp.messages.at(-1)!.role, "tool");
    for (const r of requestsSince(router, before)) assert.ok(r.status < 400, JSON.stringify(r));
  } finally {
    await worker.stop();
    await router.close();
    await rm(home, { recursive: true, force: true });
  }
});

Deno.test({
  name: "Codex CLI (gpt-5.5 tool set): an apply_patch input outside the grammar never reaches Codex as a call",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const router = await startDenoRouter();
  // Not a patch: no "*** End Patch", a line without a prefix.
  const engine = new ToolCallingEngine("apply_patch", { input: "*** Begin Patch\n*** Add File: evil.txt\nrm -rf\n" });
  const worker = startWorker(router, engine, { key: router.keys.admin });
  const home = await codexHome(router, "gpt-5.5");
  try {
    const run = await codexExec(router, home, "Create a file.", ["--dangerously-bypass-approvals-and-sandbox"]);
    assert.ok(!run.lines.some((l) => l.type === "turn.completed"), run.stdout.slice(-2000));
    const failed = run.lines.find((l) => l.type === "turn.failed");
    assert.match(failed?.error?.message ?? "", /custom tool 'apply_patch' is not valid/, run.stdout.slice(-2000));
    assert.ok(!run.lines.some((l) => l.item?.type === "file_change"), "Codex applied nothing");
    await assert.rejects(readFile(join(home, "evil.txt")));
  } finally {
    await worker.stop();
    await router.close();
    await rm(home, { recursive: true, force: true });
  }
});
