/**
 * (6) Real inference on the tiny generated GGUF: the router (embedded store) with a GPU worker running
 * node-llama-cpp (1 thread), streaming, vs node-llama-cpp called directly (bench/llama-direct.ts) with the same
 * prompt tokens, context shape and greedy decoding — time to first token and generation speed — and the TTFT gain
 * of prompt-cache reuse: a long shared system prompt sent cold (new prefix) and then again with another question.
 */
import { join } from "node:path";
import { writeTinyGguf } from "../../tests/fixtures/tiny-gguf.ts";
import { type BenchContext, CHAT_PATH } from "../context.ts";
import type { Target } from "../lib/plan.ts";
import { runSequential } from "../lib/run-load.ts";
import { median, ms, num, ratio } from "../lib/stats.ts";
import { DirectRun } from "../llama-direct.ts";
import { onCleanup } from "../lib/process.ts";
import { benchTempDir, ROOT, startDenoRouter, startGpuWorker, waitForWorkers } from "../stack.ts";

interface StreamStats {
  ttftMs: number;
  /** Tokens per second between the first and the last content. */
  decodeTps: number;
  completionTokens: number;
  promptTokens: number;
  cachedTokens: number;
  text: string;
}

interface StreamEvent {
  /** When the read that completed this event arrived (ms from sending). */
  atMs: number;
  content: string;
}

/** Reads an OpenAI stream body: its content events with their arrival times, and the usage chunk. */
function parseStream(
  body: string,
  reads: [number, number][],
): { events: StreamEvent[]; usage?: Record<string, unknown> } {
  const events: StreamEvent[] = [];
  let usage: Record<string, unknown> | undefined;
  let offset = 0;
  for (const block of body.split("\n\n")) {
    offset += block.length + 2;
    const line = block.trim();
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const chunk = JSON.parse(line.slice(6));
    const delta = chunk.choices?.[0]?.delta;
    const content = (typeof delta?.content === "string" ? delta.content : "") +
      (typeof delta?.reasoning_content === "string" ? delta.reasoning_content : "");
    if (chunk.usage) usage = chunk.usage;
    if (content) events.push({ atMs: reads.find(([chars]) => chars >= offset - 2)?.[1] ?? NaN, content });
  }
  return { events, ...(usage ? { usage } : {}) };
}

/**
 * Tokens per second while the answer streams: the tokens that arrived after the first read holding content,
 * over the time from that read to the last one (tokens apportioned by characters, as reads carry batches).
 */
function streamingRate(events: StreamEvent[], completionTokens: number): number {
  if (events.length === 0) return NaN;
  const first = events[0].atMs, last = events[events.length - 1].atMs;
  const total = events.reduce((n, e) => n + e.content.length, 0);
  const inFirstRead = events.filter((e) => e.atMs === first).reduce((n, e) => n + e.content.length, 0);
  const tokensAfter = completionTokens * (total - inFirstRead) / total;
  return last > first ? tokensAfter / ((last - first) / 1000) : NaN;
}

function routerTarget(port: number, apiKey: string, messages: object[], maxTokens: number): Target {
  return {
    name: "inference",
    host: "127.0.0.1",
    port,
    request: {
      method: "POST",
      path: CHAT_PATH,
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({
        model: "tiny",
        messages,
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0,
        max_tokens: maxTokens,
      }),
    },
    pids: [],
  };
}

/** One streamed request through the router, timed by the load generator. */
async function throughRouter(
  port: number,
  apiKey: string,
  messages: object[],
  maxTokens: number,
): Promise<StreamStats> {
  const result = await runSequential({
    targets: [routerTarget(port, apiKey, messages, maxTokens)],
    warmup: 0,
    rounds: 1,
    perRound: 1,
    stream: true,
    keepBody: true,
  }, 300_000);
  const target = result.targets[0];
  const sample = target.rounds[0][0];
  if (!sample?.body || sample.firstContentMs === undefined) {
    throw new Error(`the router did not stream an answer: ${target.firstError ?? "no content"}`);
  }
  const { events, usage } = parseStream(sample.body, sample.reads ?? []);
  const completionTokens = Number(usage?.completion_tokens ?? NaN);
  const details = usage?.prompt_tokens_details as { cached_tokens?: number } | undefined;
  return {
    ttftMs: sample.firstContentMs,
    decodeTps: streamingRate(events, completionTokens),
    completionTokens,
    promptTokens: Number(usage?.prompt_tokens ?? NaN),
    cachedTokens: Number(details?.cached_tokens ?? NaN),
    text: events.map((e) => e.content).join(""),
  };
}

/** node-llama-cpp directly, in its own process (bench/llama-direct.ts), asked one prompt at a time. */
class DirectLlama {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  readonly stop: () => Promise<void>;

  constructor(modelPath: string, ctxSize: number) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "bench/llama-direct.ts"), JSON.stringify({ modelPath, ctxSize })],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())[
      Symbol.asyncIterator
    ]();
    const child = this.#child;
    this.stop = onCleanup(async () => {
      await this.#writer.close().catch(() => {});
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, 5_000);
      await child.status;
      clearTimeout(timer);
    });
  }

  async #next(): Promise<unknown> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("llama-direct exited");
    return JSON.parse(value);
  }

  async ready(): Promise<void> {
    await this.#next();
  }

  async ask(prompt: string, maxTokens: number): Promise<DirectRun> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ prompt, maxTokens }) + "\n"));
    return DirectRun.parse(await this.#next());
  }
}

function lineSplitter(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) controller.enqueue(line);
    },
  });
}

/** Filler for the long shared prefix: varied words, so the byte-level tokenizer does not collapse it. */
function longPrefix(chars: number, nonce: string): string {
  const words = ["router", "worker", "token", "stream", "cache", "prefix", "queue", "lease", "model", "slot"];
  let text = `Session ${nonce}. You are a helpful assistant. Background notes follow.\n`;
  for (let i = 0; text.length < chars; i++) text += `${words[i % words.length]}-${(i * 7919) % 1000} `;
  return text;
}

export async function inferenceSection(ctx: BenchContext): Promise<void> {
  const s = ctx.settings.inference;
  const section = ctx.report.section("6. Real inference (tiny GGUF, node-llama-cpp, 1 thread)");
  const dir = await benchTempDir();
  const stops: (() => Promise<void>)[] = [];
  try {
    const modelPath = join(dir, "tiny.gguf");
    await writeTinyGguf(modelPath);
    ctx.log("inference: starting a router and a GPU worker on the tiny model");
    const router = await startDenoRouter({
      name: "router (inference)",
      keys: ctx.keys,
      env: { AUXOT_MODEL: "custom:tiny", AUXOT_CTX_SIZE: String(s.ctxSize), AUXOT_MAX_PARALLEL: "1" },
    });
    stops.push(router.stop);
    const worker = startGpuWorker("GPU worker (inference)", router.url, ctx.keys, [
      "--model-path",
      modelPath,
      "--threads",
      "1",
    ]);
    stops.push(worker.stop);
    await waitForWorkers(router.url, worker, 90_000);

    const directLlama = new DirectLlama(modelPath, s.ctxSize);
    stops.push(directLlama.stop);
    await directLlama.ready();

    // Each prompt is new (cold apart from the template's first tokens); the two paths alternate, one warm-up each.
    const prompts = Array.from(
      { length: s.runs + 1 },
      (_, i) => `Request ${i}: write a long story about a lighthouse.`,
    );
    ctx.log(`inference: ${s.runs} generations of ${s.maxTokens} tokens through the router and directly, alternating`);
    const routed: StreamStats[] = [];
    const directRuns: DirectRun[] = [];
    for (const prompt of prompts) {
      routed.push(await throughRouter(router.port, ctx.keys.api, [{ role: "user", content: prompt }], s.maxTokens));
      directRuns.push(await directLlama.ask(prompt, s.maxTokens));
    }
    const routedMeasured = routed.slice(1);
    const directMeasured = directRuns.slice(1);
    const directTps = directMeasured.map((r) => (r.completionTokens - 1) / ((r.totalMs - r.ttftMs) / 1000));
    const routerTtft = median(routedMeasured.map((r) => r.ttftMs));
    const directTtft = median(directMeasured.map((r) => r.ttftMs));
    const routerTps = median(routedMeasured.map((r) => r.decodeTps));
    const directTpsMedian = median(directTps);
    const sameText = routed.every((r, i) => r.text === directRuns[i]?.text);
    const samePrompt = routed.every((r, i) => r.promptTokens === directRuns[i]?.promptTokens);
    section.tables.push({
      header: ["Path", "TTFT p50", "Tokens/s p50", "Prompt tokens", "Completion tokens"],
      rows: [
        [
          "node-llama-cpp directly",
          ms(directTtft),
          num(directTpsMedian),
          num(directMeasured[0]?.promptTokens),
          num(directMeasured[0]?.completionTokens),
        ],
        [
          "Router + GPU worker",
          ms(routerTtft),
          num(routerTps),
          num(routedMeasured[0]?.promptTokens),
          num(routedMeasured[0]?.completionTokens),
        ],
        ["Ratio (router ÷ direct)", ratio(routerTtft / directTtft), ratio(routerTps / directTpsMedian), "", ""],
      ],
    });
    section.notes.push(
      `${s.runs} greedy generations of ${s.maxTokens} tokens per path (after one warm-up), alternating between the ` +
        "paths, each prompt new; " +
        "TTFT through the router = request sent → first streamed content. Tokens/s: directly, (tokens − 1) ÷ " +
        "(last token − first token); through the router, the tokens that arrived after the first content read ÷ " +
        "(last read − first read) — the worker posts tokens in batches. Same prompt tokens: " +
        (samePrompt ? "yes" : "NO") + "; same text: " +
        (sameText ? "yes" : "NO") + ".",
    );
    if (!sameText || !samePrompt) ctx.report.warn("Real inference: the router and direct paths did different work.");
    ctx.report.target({
      target: "Real-inference tokens/s through the router",
      goal: "≥ 0.95× direct",
      measured: ratio(routerTps / directTpsMedian),
      met: Number.isFinite(routerTps / directTpsMedian) ? routerTps / directTpsMedian >= 0.95 : undefined,
    });

    ctx.log(`inference: prompt-cache reuse, ${s.cacheRounds} rounds with a ~${s.prefixChars}-character prefix`);
    const cold: StreamStats[] = [];
    const warm: StreamStats[] = [];
    for (let round = 0; round < s.cacheRounds; round++) {
      const system = { role: "system", content: longPrefix(s.prefixChars, crypto.randomUUID()) };
      cold.push(await throughRouter(router.port, ctx.keys.api, [system, { role: "user", content: "First?" }], 8));
      warm.push(await throughRouter(router.port, ctx.keys.api, [system, { role: "user", content: "Second?" }], 8));
    }
    const coldTtft = median(cold.map((r) => r.ttftMs));
    const warmTtft = median(warm.map((r) => r.ttftMs));
    section.tables.push({
      header: ["Long shared prefix", "TTFT p50", "Prompt tokens", "Cached tokens"],
      rows: [
        [
          "Cold (new prefix)",
          ms(coldTtft),
          num(median(cold.map((r) => r.promptTokens))),
          num(median(cold.map((r) => r.cachedTokens))),
        ],
        [
          "Warm (same prefix, new question)",
          ms(warmTtft),
          num(median(warm.map((r) => r.promptTokens))),
          num(median(warm.map((r) => r.cachedTokens))),
        ],
        ["Gain (cold ÷ warm)", ratio(coldTtft / warmTtft), "", ""],
      ],
    });
    section.notes.push(
      `Through the router, ${s.cacheRounds} round(s): a request with a new long system prompt, then the same ` +
        "system prompt with another question (the worker reuses the slot's evaluated prefix).",
    );
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}
