/**
 * What a person reads at a terminal vs what a machine reads when the output is piped: the log format choice
 * (AUXOT_LOG_FORMAT, terminal or not), the human wording of the first-hour messages, the JSON records unchanged,
 * and the per-job line's figures (tokens in/out, tokens/s) from a job's real event sequence.
 */
import assert from "node:assert/strict";
import { createLogger, logFormatFrom } from "../../src/log.ts";
import { formatHumanLine } from "../../src/log-human.ts";
import { JobTally } from "../../workers/common/job-log.ts";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";

Deno.test("format: human on a terminal, JSON when piped; AUXOT_LOG_FORMAT wins either way", () => {
  assert.equal(logFormatFrom({}, true), "human");
  assert.equal(logFormatFrom({}, false), "json");
  assert.equal(logFormatFrom({ AUXOT_LOG_FORMAT: "json" }, true), "json");
  assert.equal(logFormatFrom({ AUXOT_LOG_FORMAT: "HUMAN" }, false), "human");
  assert.equal(logFormatFrom({ AUXOT_LOG_FORMAT: "" }, true), "human");
});

Deno.test("JSON records are unchanged; human lines carry the same facts in words", () => {
  const json: string[] = [];
  const human: string[] = [];
  const fields = { router: "http://127.0.0.1:8080", error: new TypeError("fetch failed"), retryInMs: 4200, attempt: 3 };
  createLogger("info", (l) => json.push(l), { worker: "gpu" }).warn("cannot reach the router, retrying", fields);
  createLogger("info", (l) => human.push(l), { worker: "gpu" }, "human").warn(
    "cannot reach the router, retrying",
    fields,
  );
  const record = JSON.parse(json[0]);
  assert.deepEqual(Object.keys(record), ["time", "level", "msg", "worker", "router", "error", "retryInMs", "attempt"]);
  assert.deepEqual(record.error, { name: "TypeError", message: "fetch failed" });
  assert.match(
    human[0],
    /^\d\d:\d\d:\d\d WARNING cannot reach the router at http:\/\/127\.0\.0\.1:8080: fetch failed — retrying in 4\.2s \(attempt 3\)$/,
  );
  // Secrets are redacted in both forms; child loggers keep the format; debug stays filtered.
  const lines: string[] = [];
  const log = createLogger("info", (l) => lines.push(l), {}, "human").child({ job: "j1" });
  log.debug("hidden");
  log.info("something else", { apiKey: "rtr_secret", count: 2 });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /something else · job=j1 apiKey=\[redacted\] count=2$/);
  assert.doesNotMatch(lines[0], /rtr_secret/);
});

Deno.test("first-hour messages in words: router, backend, model, download, job, model host unreachable", () => {
  const at = new Date(2026, 0, 1, 12, 4, 31);
  const line = (msg: string, f: Record<string, unknown>, level: "info" | "error" = "info") =>
    formatHumanLine(level, msg, f, at);
  assert.equal(
    line("router listening", {
      url: "http://0.0.0.0:8080",
      model: "Qwen3.5-35B-A3B",
      quantization: "auto",
      ctxSize: 131072,
      maxParallel: 2,
      store: "embedded",
    }),
    "12:04:31 router listening on http://0.0.0.0:8080 · model Qwen3.5-35B-A3B (auto) · 2 slots × 131072 tokens · store embedded",
  );
  assert.equal(
    line("llama backend", {
      backend: "cuda",
      gpu: "NVIDIA H100 80GB HBM3",
      vramFreeBytes: 79.1e9,
      vramTotalBytes: 85.5e9,
    }),
    "12:04:31 backend cuda · NVIDIA H100 80GB HBM3 · 79.1 GB free of 85.5 GB",
  );
  assert.equal(
    line("model policy applied", { model: "Qwen3-8B", quantization: "Q4_K_M", slots: 2, ctxSize: 8192 }),
    "12:04:31 model Qwen3-8B Q4_K_M: 2 slots × 8192 tokens",
  );
  assert.equal(
    line("download", { progress: "[1/1] Qwen3-8B-Q4_K_M.gguf 42% 2.1 GB/5.0 GB 95.2 MB/s ETA 30s" }),
    "12:04:31 download [1/1] Qwen3-8B-Q4_K_M.gguf 42% 2.1 GB/5.0 GB 95.2 MB/s ETA 30s",
  );
  assert.equal(
    line("job done", {
      job: "3f2a9c1e-aaaa",
      outcome: "done (stop)",
      promptTokens: 812,
      cachedTokens: 790,
      completionTokens: 256,
      ms: 3400,
      tokensPerSecond: 81.27,
    }),
    "12:04:31 job 3f2a9c1e done (stop): 812 in (790 cached) → 256 out in 3.4s, 81.3 tok/s",
  );
  const cause = Object.assign(new Error("getaddrinfo ENOTFOUND huggingface.co"), { code: "ENOTFOUND" });
  assert.equal(
    line("could not apply the model policy; retrying", {
      error: new Error("Could not reach huggingface.co", { cause }),
      retryInMs: 20_000,
    }, "error"),
    "12:04:31 ERROR could not load the model: Could not reach huggingface.co: getaddrinfo ENOTFOUND huggingface.co — retrying in 20s",
  );
});

Deno.test("job tally: tokens from the usage event, tokens/s from first output to the end, outcome from the last event", () => {
  let now = 1000;
  const tally = new JobTally({ id: "job-1", kind: "chat" } as WorkerJob, () => now);
  tally.observe({ type: "start", model: "tiny" });
  now = 1500; // prompt evaluated: the first token arrives
  tally.observe({ type: "text", text: "Hel" });
  now = 3500;
  tally.observe({ type: "usage", usage: { promptTokens: 40, completionTokens: 100, cachedTokens: 12 } });
  tally.observe({ type: "done", finishReason: "length" });
  assert.deepEqual(tally.summary(), {
    job: "job-1",
    kind: "chat",
    outcome: "done (length)",
    promptTokens: 40,
    cachedTokens: 12,
    completionTokens: 100,
    ms: 2500,
    tokensPerSecond: 50,
  });
  const cancelled = new JobTally({ id: "job-2", kind: "chat" } as WorkerJob, () => now);
  cancelled.observe({ type: "error", message: "cancelled", retryable: false, code: "cancelled" });
  assert.equal(cancelled.summary().outcome, "cancelled");
  assert.equal(cancelled.summary().tokensPerSecond, undefined);
});
