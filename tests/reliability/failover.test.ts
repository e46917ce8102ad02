/**
 * Issue 17's acceptance on both stores: kill -9 the real GPU worker (tiny GGUF, greedy) mid-stream with a second
 * worker ready — the caller's text equals the unfaulted text; the same for a forced tool call, which fails
 * explicitly (tool calls are not resumed); SIGSTOP a scripted worker during a paced prefill — not declared lost
 * while it reports progress, declared lost within the silence window once frozen; a few kills of a scripted worker
 * in a row. Timings are printed, never asserted (the machine is shared).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { runGpuKill, runKillLoop, runPrefillFreeze } from "./failover.ts";

const options = { sanitizeOps: false, sanitizeResources: false };

for (const store of ["embedded", "upstash"] as const) {
  Deno.test(
    { name: `${store}: kill -9 the GPU worker mid-stream: the answer continues, exactly`, ...options },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "auxot-failover-"));
      try {
        const modelPath = join(dir, "tiny.gguf");
        await writeTinyGguf(modelPath);
        const f = await runGpuKill({ store, modelPath });
        console.log(
          `${store}: killed after ${f.chunksBeforeKill} chunks; kill → next token ${
            f.killToNextTokenMs?.toFixed(0)
          } ms`,
        );
        assert.ok(f.chunksBeforeKill > 0, "the worker was killed mid-stream");
        assert.equal(f.faulted.error, undefined);
        assert.equal(f.continued, 1, "continued once");
        assert.equal(f.faulted.roleChunks, 1);
        assert.ok(f.faulted.done, "ends with [DONE]");
        assert.ok(f.reference.length > 100);
        assert.equal(f.faulted.text, f.reference, "the joined answer equals the unfaulted one");

        // Killed right after the call's first chunk: the rest of its arguments is still being generated.
        const tool = await runGpuKill({ store, modelPath, tool: true, killAfterChunks: 1 });
        console.log(
          `${store}: tool call killed after ${tool.chunksBeforeKill} chunk(s), ${tool.faulted.text.length} chars ` +
            `sent, done ${tool.faulted.done}: ${tool.faulted.error}`,
        );
        assert.ok(tool.chunksBeforeKill > 0, "the worker was killed mid-call");
        assert.match(tool.faulted.error ?? "", /tool call/);
        assert.ok(!tool.faulted.done, "a failed stream does not end like a complete one");
        assert.equal(tool.continued, 0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  Deno.test(
    { name: `${store}: SIGSTOP during a paced prefill: alive while it reports progress`, ...options },
    async () => {
      const f = await runPrefillFreeze({ store });
      console.log(`${store}: frozen worker declared lost ${f.stopToDeclaredMs?.toFixed(0)} ms after SIGSTOP`);
      assert.ok(f.progressRespected, "a 6 s prefill reporting progress is not declared lost (silence 2 s)");
      assert.ok(f.completedAfterFreeze, "the frozen worker's job completed on the other worker");
    },
  );
}

Deno.test({ name: "embedded: three kills in a row of a scripted worker: every answer exact", ...options }, async () => {
  const f = await runKillLoop({ store: "embedded", kills: 3 });
  console.log(`kill → next token: ${f.latenciesMs.map((ms) => ms.toFixed(0)).join(", ")} ms`);
  assert.equal(f.exact, 3, JSON.stringify(f));
});
