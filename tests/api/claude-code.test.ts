/**
 * The real Claude Code CLI (npm, pinned) against the router with a real GPU worker on a generated tiny model, offline:
 * a `-p` run completes in its default request shape (long system prompt, two dozen tools, JSON Schema 2020-12,
 * thinking, role:"system" entries) and in `--bare`, and the router accepts every request (no 4xx).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { eventually, startDenoRouter } from "../helpers/router.ts";
import { spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { PINNED_CLAUDE, runClaude } from "../helpers/claude-cli.ts";

const CLAUDE = PINNED_CLAUDE.binary;

const claude = (args: string[], env: Record<string, string>, home: string) => runClaude(CLAUDE, args, home, env);

Deno.test({
  name: "Claude Code -p runs against the router and a tiny-model worker",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-claude-code-"));
  const modelPath = join(dir, "tiny.gguf");
  // The tiny model ends its turns by itself (eosBias), since Claude Code asks for up to 64,000 tokens.
  await writeTinyGguf(modelPath, { eosBias: 2, ctx: 131_072, layers: 1, nEmbd: 32, heads: 2 });
  const router = await startDenoRouter({ AUXOT_CTX_SIZE: "131072", AUXOT_MAX_PARALLEL: "1" });
  const worker = spawnGpuWorker(router, modelPath);
  const env = { ANTHROPIC_BASE_URL: router.url, ANTHROPIC_API_KEY: router.keys.api, PATH: Deno.env.get("PATH") ?? "" };
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      60_000,
      "the worker",
    );
    for (const [shape, extra] of [["--bare", ["--bare", "--tools", ""]], ["default", []]] as const) {
      await t.step(`${shape} request shape`, async () => {
        const before = router.logs.length;
        const run = await claude(
          [
            "-p",
            "Say hello.",
            "--output-format",
            "stream-json",
            "--verbose",
            "--no-session-persistence",
            "--model",
            "opus",
            ...extra,
          ],
          env,
          dir,
        );
        const result = run.lines.find((l) => l.type === "result");
        assert.ok(result, `no result line; exit ${run.code}\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`);
        assert.equal(result.is_error, false, JSON.stringify(result));
        assert.equal(run.code, 0);
        assert.equal(typeof result.result, "string");
        // Every request the CLI made was accepted.
        const requests = router.logs.slice(before).map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
        assert.ok(requests.some((r) => r.method === "POST" && r.path === "/v1/messages"), "the CLI reached the router");
        for (const r of requests) assert.ok(r.status < 400, JSON.stringify(r));
      });
    }
  } finally {
    await worker.stop();
    await router.close();
    await rm(dir, { recursive: true, force: true });
  }
});
