/**
 * Where the router's time and memory go under the throughput load: starts the mock engine, the router (embedded
 * store) under `--inspect` and its worker, runs the throughput section's load (non-streaming, or streaming with
 * `--stream`) and records, over the measured window, a V8 CPU profile and a sampling heap profile of the router
 * through the inspector protocol (Deno has no --cpu-prof). Prints self time by function and by area, allocations
 * by function, CPU ms per request and peak RSS; writes the raw .cpuprofile / .heapprofile beside them.
 *
 * `--root DIR` profiles another checkout's router (e.g. a `git worktree` of main) so that a baseline and a change
 * can be profiled on the same machine in the same minutes.
 *
 *   deno run -A bench/profile.ts [--root DIR] [--seconds 8] [--connections 64] [--stream] [--out DIR] [--no-profile]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CHAT_PATH, NON_STREAM_MESSAGE } from "./context.ts";
import { cpuMs, peakRssBytes } from "./lib/proc-stats.ts";
import { freePort, getText, spawnChild, stopAll, waitFor } from "./lib/process.ts";
import {
  type CpuProfile,
  type HeapNode,
  summarizeCpu,
  summarizeHeap,
  summarizeSnapshot,
} from "./lib/profile-summary.ts";
import { runThroughput } from "./lib/run-load.ts";
import { denoRouterEnv, makeKeys, ROOT, startGpuWorker, startMock, startV8Flags, waitForWorkers } from "./stack.ts";

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
class Inspector {
  #next = 1;
  #pending = new Map<number, (value: { result?: unknown; error?: unknown }) => void>();
  /** Heap snapshot chunks, as HeapProfiler.addHeapSnapshotChunk events bring them. */
  snapshotChunks: string[] = [];
  private constructor(private socket: WebSocket) {
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: unknown;
        error?: unknown;
        method?: string;
        params?: { chunk?: string };
      };
      if (message.id !== undefined) this.#pending.get(message.id)?.(message);
      else if (message.method === "HeapProfiler.addHeapSnapshotChunk") this.snapshotChunks.push(message.params!.chunk!);
    };
  }
  static async connect(port: number): Promise<Inspector> {
    const list = JSON.parse((await getText(`http://127.0.0.1:${port}/json/list`, {}, 5_000)).text) as {
      webSocketDebuggerUrl: string;
    }[];
    const socket = new WebSocket(list[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }
  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) =>
      this.#pending.set(id, (m) => m.error ? reject(new Error(JSON.stringify(m.error))) : resolve(m.result as T))
    );
  }
  close(): void {
    this.socket.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      root: { type: "string", default: ROOT },
      seconds: { type: "string", default: "8" },
      connections: { type: "string", default: "64" },
      stream: { type: "boolean", default: false },
      out: { type: "string" },
      top: { type: "string", default: "30" },
      /** Only CPU ms per request and peak RSS, without the profilers' own cost (for before/after figures). */
      "no-profile": { type: "boolean", default: false },
      /** V8 flags for the router (e.g. heap limits), to see what they do to RSS and CPU. */
      "v8-flags": { type: "string" },
      /** NAME=VALUE,… more environment for the router (e.g. MALLOC_ARENA_MAX=2). */
      "router-env": { type: "string" },
      /** With --no-profile: a heap snapshot at the end of the window (live objects after a full GC), summarised. */
      "heap-snapshot": { type: "boolean", default: false },
      /** Sample only what survives the young-generation GC (promoted, then freed by a full GC or still live). */
      promoted: { type: "boolean", default: false },
      /** Profile the worker instead of the router (figures per request are still per chat request). */
      worker: { type: "boolean", default: false },
    },
  });
  const root = values.root!;
  const keys = await makeKeys();
  const mock = await startMock();
  const port = freePort();
  const inspectPort = freePort();
  const router = spawnChild(
    "router",
    Deno.execPath(),
    [
      "run",
      "-A",
      `--inspect=127.0.0.1:${inspectPort}`,
      // As `deno task start` runs it, unless --v8-flags says otherwise ("" for none).
      ...(values["v8-flags"] !== undefined
        ? (values["v8-flags"] ? [`--v8-flags=${values["v8-flags"]}`] : [])
        : await startV8Flags(root)),
      join(root, "src/entry-deno.ts"),
    ],
    {
      cwd: root,
      env: await denoRouterEnv(
        port,
        keys,
        Object.fromEntries((values["router-env"] ?? "").split(",").filter(Boolean).map((kv) => kv.split("="))),
      ),
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "router /health",
    async () => {
      const { status } = await getText(`${url}/health`, {}, 2_000);
      return status === 200 || status === 503 ? true : undefined;
    },
    30_000,
    router,
  );
  const workerArgs = ["--llama-url", mock.url, "--slots", "64"];
  const workerInspectPort = freePort();
  // --worker: the GPU worker (this checkout's) is what gets profiled, under the same load.
  const worker = values.worker
    ? spawnChild("worker", Deno.execPath(), [
      "run",
      "-A",
      `--inspect=127.0.0.1:${workerInspectPort}`,
      join(ROOT, "workers/gpu/main.ts"),
      ...workerArgs,
    ], { cwd: ROOT, env: { AUXOT_GPU_KEY: keys.admin, AUXOT_ROUTER_URL: url, AUXOT_LOG_LEVEL: "warn" } })
    : startGpuWorker("worker", url, keys, workerArgs);
  await waitForWorkers(url, worker, 60_000);

  const target = {
    name: "router",
    host: "127.0.0.1",
    port,
    request: {
      method: "POST" as const,
      path: CHAT_PATH,
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.api}` },
      body: JSON.stringify({
        model: "bench",
        messages: [{ role: "user", content: values.stream ? "Stream. tokens=50" : NON_STREAM_MESSAGE }],
        ...(values.stream ? { stream: true } : {}),
      }),
    },
    pids: [router.pid, worker.pid],
  };
  // Warm-up (JIT, caches), then the profiled window.
  await runThroughput({
    targets: [target],
    rounds: 1,
    connections: Number(values.connections),
    warmupMs: 0,
    durationMs: 2_000,
  });
  if (values["no-profile"]) {
    // The V8 heap's share of the RSS: its size polled through the inspector (cheap) during the window.
    const inspector = await Inspector.connect(inspectPort);
    let heapTotal = 0, heapUsed = 0;
    const poll = setInterval(async () => {
      const usage = await inspector.send<{ usedSize: number; totalSize: number }>("Runtime.getHeapUsage");
      heapTotal = Math.max(heapTotal, usage.totalSize);
      heapUsed = Math.max(heapUsed, usage.usedSize);
    }, 250);
    const cpuBefore = cpuMs(router.pid);
    const plain = await runThroughput({
      targets: [target],
      rounds: 1,
      connections: Number(values.connections),
      warmupMs: 0,
      durationMs: Number(values.seconds) * 1000,
    });
    const w = plain.targets[0].rounds[0];
    // HTTP requests per job: worker requests (polls and posts) over chat requests, from the router's own counters.
    const metrics = (await getText(`${url}/metrics`, { authorization: `Bearer ${keys.admin}` }, 5_000)).text;
    const count = (api: string) =>
      [...metrics.matchAll(new RegExp(`auxot_requests_total\\{api="${api}",status="\\d+"\\} (\\d+)`, "g"))]
        .reduce((sum, m) => sum + Number(m[1]), 0);
    const workerRequestsPerJob = count("worker") / Math.max(1, count("openai"));
    console.log(JSON.stringify({
      root,
      stream: values.stream,
      rps: Math.round(w.requests / w.seconds),
      p50: w.p50,
      errors: w.errors,
      routerCpuMsPerRequest: (cpuMs(router.pid) - cpuBefore) / w.requests,
      workerCpuMsPerRequest: (w.cpuMs[String(worker.pid)] ?? NaN) / w.requests,
      routerPeakRssMb: Math.round(peakRssBytes(router.pid) / 1024 / 1024),
      v8HeapPeakTotalMb: Math.round(heapTotal / 1024 / 1024),
      v8HeapPeakUsedMb: Math.round(heapUsed / 1024 / 1024),
      workerRequestsPerJob: Number(workerRequestsPerJob.toFixed(2)),
    }));
    clearInterval(poll);
    // With --v8-flags=--trace-gc: the router's last GC lines (young and old generation sizes over the window).
    if (values["v8-flags"]?.includes("trace-gc")) console.log(router.output().split("\n").slice(-40).join("\n"));
    if (values["heap-snapshot"]) {
      await inspector.send("HeapProfiler.enable");
      await inspector.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      const out = values.out ?? await Deno.makeTempDir({ prefix: "auxot-profile-" });
      await Deno.mkdir(out, { recursive: true });
      const text = inspector.snapshotChunks.join("");
      await Deno.writeTextFile(join(out, "router.heapsnapshot"), text);
      console.log(summarizeSnapshot(JSON.parse(text), Number(values.top)).join("\n"));
      console.log(`snapshot in ${out}`);
    }
    inspector.close();
    return;
  }
  const inspector = await Inspector.connect(values.worker ? workerInspectPort : inspectPort);
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
  await inspector.send("HeapProfiler.enable");
  await inspector.send("HeapProfiler.startSampling", {
    samplingInterval: 4096,
    // Everything allocated in the window, not only what is still alive at its end: garbage is the per-request cost.
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: !values.promoted,
  });
  await inspector.send("Profiler.start");
  const cpuBefore = cpuMs(router.pid);
  const result = await runThroughput({
    targets: [target],
    rounds: 1,
    connections: Number(values.connections),
    warmupMs: 0,
    durationMs: Number(values.seconds) * 1000,
  });
  const cpuAfter = cpuMs(router.pid);
  const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
  const { profile: heap } = await inspector.send<{ profile: { head: HeapNode } }>("HeapProfiler.stopSampling");
  inspector.close();
  const window = result.targets[0].rounds[0];
  const requests = window.requests;
  const out = values.out ?? await Deno.makeTempDir({ prefix: "auxot-profile-" });
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(join(out, "router.cpuprofile"), JSON.stringify(profile));
  await Deno.writeTextFile(join(out, "router.heapprofile"), JSON.stringify(heap));
  const lines = [
    `root ${root}${values.stream ? " (streaming, 50 tokens)" : ""}`,
    `${requests} requests in ${window.seconds.toFixed(1)} s = ${(requests / window.seconds).toFixed(0)} req/s, ` +
    `p50 ${window.p50?.toFixed(2)} ms, errors ${window.errors}${window.firstError ? ` (${window.firstError})` : ""}`,
    `router CPU ${((cpuAfter - cpuBefore) / requests).toFixed(3)} ms/request (profiler on); ` +
    `worker ${((window.cpuMs[String(worker.pid)] ?? NaN) / requests).toFixed(3)} ms/request; ` +
    `router peak RSS ${(peakRssBytes(router.pid) / 1024 / 1024).toFixed(0)} MB`,
    "",
    ...summarizeCpu(profile, requests, Number(values.top)),
    "",
    ...summarizeHeap(heap.head, requests, Number(values.top)),
    "",
    `raw profiles in ${out}`,
  ];
  console.log(lines.join("\n"));
}

try {
  await main();
} finally {
  await stopAll();
}
