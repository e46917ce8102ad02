/**
 * The router's own CPU per request, without sockets or other processes: two routers (this checkout and a
 * baseline checkout, e.g. `git worktree add --detach /tmp/base main`) built in ONE process on the embedded store,
 * driven in alternating batches by the same in-process callers and the same scripted worker (poll → one batch of
 * events). Process CPU (µs, process.cpuUsage) per batch gives CPU per request for each; medians over batches. On
 * a loaded machine both routers see the same load, so the ratio is steadier than separate runs' figures.
 *
 * `--profile` instead records a CPU and a sampling heap profile (node:inspector) over this checkout's batches only
 * and prints where the time and the allocations go; the callers' and the scripted worker's own work is in it too
 * (bench/, Request construction), so read the router's areas.
 *
 *   deno run -A bench/router-cpu.ts --baseline /tmp/base [--batches 10] [--jobs 500] [--callers 32]
 *                                   [--tokens 16] [--stream] [--profile]
 */
import { Session } from "node:inspector";
import process from "node:process";
import { parseArgs } from "node:util";
import { type CpuProfile, type HeapNode, summarizeCpu, summarizeHeap } from "./lib/profile-summary.ts";
import { makeKeys, ROOT } from "./stack.ts";

interface Fetcher {
  fetch(request: Request, call?: { client: string }): Promise<Response>;
}

async function buildRouter(root: string, hashes: Record<string, string>): Promise<Fetcher> {
  const { createApp } = await import(`${root}/src/app.ts`);
  const { loadConfig } = await import(`${root}/src/config.ts`);
  const { createStore } = await import(`${root}/src/store/create.ts`);
  const { createLogger } = await import(`${root}/src/log.ts`);
  const config = loadConfig({ AUXOT_MODEL: "custom:bench", AUXOT_LOG_LEVEL: "warn", ...hashes });
  return createApp({ config, store: createStore(config), log: createLogger("warn") });
}

const post = (path: string, key: string, body: unknown) =>
  new Request(`http://127.0.0.1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });

/** A worker that answers every job with one batch: start, `tokens` text events, usage, done. */
function scriptedWorker(app: Fetcher, key: string, tokens: number, slots: number, stop: AbortSignal) {
  const worker = { id: "bench-worker-1", kind: "gpu", slots, free: slots };
  const events = [
    { type: "start", model: "bench", promptTokens: 10 },
    ...Array.from({ length: tokens }, (_, i) => ({ type: "text", text: ` tok${i}` })),
    { type: "usage", usage: { promptTokens: 10, completionTokens: tokens, cachedTokens: 0 } },
    { type: "done", finishReason: "stop" },
  ];
  let policyVersion = "";
  const loop = async () => {
    while (!stop.aborted) {
      const loaded = policyVersion ? { loaded: { policyVersion, model: "custom:bench" } } : {};
      const response = await app.fetch(
        post("/worker/v1/poll", key, { protocol: 1, worker: { ...worker, ...loaded }, waitMs: 1_000 }),
      );
      const body = await response.json() as {
        policy: { version: string };
        jobs: { id: string; leaseToken?: string }[];
      };
      if (!response.ok) throw new Error(`poll: ${response.status} ${JSON.stringify(body)}`);
      policyVersion = body.policy.version;
      await Promise.all(body.jobs.map(async (job) => {
        const r = await app.fetch(
          post(`/worker/v1/jobs/${job.id}/events`, key, {
            workerId: worker.id,
            seq: 0,
            events,
            ...(job.leaseToken ? { leaseToken: job.leaseToken } : {}),
          }),
        );
        await r.body?.cancel();
      }));
    }
  };
  return loop();
}

async function batch(app: Fetcher, key: string, jobs: number, callers: number, stream: boolean): Promise<void> {
  let left = jobs;
  const body = { model: "bench", messages: [{ role: "user", content: "Say hello." }], ...(stream ? { stream } : {}) };
  await Promise.all(Array.from({ length: callers }, async () => {
    while (left-- > 0) {
      const response = await app.fetch(post("/v1/chat/completions", key, body), { client: "127.0.0.1" });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`chat: ${response.status} ${text.slice(0, 300)}`);
    }
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      baseline: { type: "string" },
      batches: { type: "string", default: "10" },
      jobs: { type: "string", default: "500" },
      callers: { type: "string", default: "32" },
      tokens: { type: "string", default: "16" },
      stream: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
    },
  });
  const keys = await makeKeys();
  const roots = [
    ["this", ROOT.replace(/\/$/, "")],
    ...(values.baseline && !values.profile ? [["baseline", values.baseline]] : []),
  ];
  const stop = new AbortController();
  const routers = [];
  for (const [name, root] of roots) {
    const app = await buildRouter(root, keys.hashes);
    const worker = scriptedWorker(app, keys.admin, Number(values.tokens), 64, stop.signal);
    routers.push({ name, root, app, worker, cpu: [] as number[] });
  }
  const jobs = Number(values.jobs);
  const callers = Number(values.callers);
  for (const r of routers) {
    // One request alone first: the key's first (Argon2id) verification, which concurrent callers would queue behind.
    await batch(r.app, keys.api, 1, 1, values.stream);
    await batch(r.app, keys.api, Math.min(jobs, 200), callers, values.stream); // warm-up
  }
  if (values.profile) {
    const session = new Session();
    session.connect();
    const call = <T>(method: string, params: Record<string, unknown> = {}) =>
      new Promise<T>((resolve, reject) => session.post(method, params, (e, r) => e ? reject(e) : resolve(r as T)));
    await call("Profiler.enable");
    await call("Profiler.setSamplingInterval", { interval: 100 });
    await call("HeapProfiler.enable");
    await call("HeapProfiler.startSampling", {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await call("Profiler.start");
    const total = jobs * Number(values.batches);
    await batch(routers[0].app, keys.api, total, callers, values.stream);
    const { profile } = await call<{ profile: CpuProfile }>("Profiler.stop");
    const { profile: heap } = await call<{ profile: { head: HeapNode } }>("HeapProfiler.stopSampling");
    console.log([...summarizeCpu(profile, total, 40), "", ...summarizeHeap(heap.head, total, 40)].join("\n"));
    Deno.exit(0);
  }
  for (let i = 0; i < Number(values.batches); i++) {
    for (const r of i % 2 ? [...routers].reverse() : routers) {
      const before = process.cpuUsage();
      await batch(r.app, keys.api, jobs, callers, values.stream);
      const used = process.cpuUsage(before);
      r.cpu.push((used.user + used.system) / 1000 / jobs);
    }
  }
  stop.abort();
  await Promise.allSettled(routers.map((r) => r.worker));
  const result = routers.map((r) => ({
    router: r.name,
    root: r.root,
    mode: values.stream ? `streaming, ${values.tokens} tokens` : `non-streaming, ${values.tokens} tokens`,
    cpuMsPerRequest: Number(median(r.cpu).toFixed(4)),
  }));
  console.log(JSON.stringify(result, null, 1));
  Deno.exit(0); // the routers' reapers and idle waits would keep the process alive
}

await main();
