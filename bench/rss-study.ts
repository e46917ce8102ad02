/**
 * Where the router's peak resident memory goes under the throughput section's load (issue 20), and what V8 flags
 * or environment settings change it. Each variant is a fresh process (VmHWM is a process's peak since it started)
 * loaded like bench/sections/throughput.ts does — `connections` keep-alive callers, non-streaming, a warm-up then a
 * measured window — through the router and an external-engine GPU worker to the mock engine; the floor variant is a
 * bare Deno.serve (bench/lib/hello-serve.ts) under the same load and flags. Rounds interleave the variants (the
 * order rotates each round) so that a busy machine weighs on all of them; the table shows medians and ranges, and
 * each variant's figures over the first variant's in the same round (paired ratios: on a shared machine the load
 * drifts between rounds far more than between neighbouring runs).
 *
 * `--breakdown` preloads bench/lib/memory-probe.ts into each process and prints, at its peak, the V8 heap by space,
 * V8's malloced and external memory and /proc/self/smaps grouped by kind; the probe costs a little CPU, so read
 * the CPU figures from runs without it. With the probe loaded, SIGUSR2 to the process writes a heap snapshot.
 *
 *   deno run -A bench/rss-study.ts [--rounds 3] [--warmup 2000] [--duration 5000] [--connections 64] [--breakdown]
 *                                  [--only base,hello,...] [--variant 'name=router:--flag1,--flag2[:ENV=value[:DIR]]']
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chatTarget, type Path } from "./context.ts";
import { peakRssBytes, rssBytes } from "./lib/proc-stats.ts";
import { freePort, getText, spawnChild, stopAll, waitFor } from "./lib/process.ts";
import { runThroughput } from "./lib/run-load.ts";
import { median } from "./lib/stats.ts";
import {
  type BenchKeys,
  benchTempDir,
  denoRouterEnv,
  makeKeys,
  ROOT,
  startGpuWorker,
  startMock,
  startV8Flags,
  waitForWorkers,
} from "./stack.ts";

interface Variant {
  name: string;
  server: "router" | "hello";
  /** V8 flags (without `--v8-flags=`); the checkout's `deno task start` flags for the baseline. */
  v8: string[];
  env?: Record<string, string>;
  /** Another checkout whose router to run (e.g. a code change measured against this one); this one by default. */
  root?: string;
}

const START_FLAGS = (await startV8Flags(ROOT)).flatMap((f) => f.slice("--v8-flags=".length).split(","));
const HGP = ["--heap-growing-percent=100"];

const CATALOG: Variant[] = [
  { name: "base", server: "router", v8: START_FLAGS },
  { name: "hello", server: "hello", v8: START_FLAGS },
  { name: "no-flags", server: "router", v8: [] },
  { name: "semi4", server: "router", v8: [...HGP, "--max-semi-space-size=4"] },
  { name: "semi8", server: "router", v8: [...HGP, "--max-semi-space-size=8"] },
  { name: "semi16", server: "router", v8: [...HGP, "--max-semi-space-size=16"] },
  { name: "semi8-hgp25", server: "router", v8: ["--heap-growing-percent=25", "--max-semi-space-size=8"] },
  { name: "semi8-nohgp", server: "router", v8: ["--max-semi-space-size=8"] },
  { name: "opt-size", server: "router", v8: [...START_FLAGS, "--optimize-for-size"] },
  { name: "memory-saver", server: "router", v8: [...START_FLAGS, "--memory-saver-mode"] },
  { name: "single-threaded-gc", server: "router", v8: [...START_FLAGS, "--single-threaded-gc"] },
  { name: "max-lazy", server: "router", v8: [...START_FLAGS, "--max-lazy"] },
  { name: "minor-ms", server: "router", v8: [...START_FLAGS, "--minor-ms"] },
  { name: "arena2", server: "router", v8: START_FLAGS, env: { MALLOC_ARENA_MAX: "2" } },
];

/** `name=router:--flag1,--flag2[:ENV=value;ENV2=value[:/other/checkout]]` (or `hello` for the floor server). */
function parseVariant(spec: string): Variant {
  const [name, server, flags = "", envSpec = "", root] = splitOnce(spec, "=").flatMap((part, i) =>
    i === 0 ? [part] : part.split(":")
  );
  if (server !== "router" && server !== "hello") throw new Error(`--variant ${spec}: server must be router or hello`);
  const env = Object.fromEntries(envSpec.split(";").filter(Boolean).map((kv) => splitOnce(kv, "=")));
  return { name, server, v8: flags.split(",").filter(Boolean), env, root: root || undefined };
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + separator.length)];
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "3" },
    warmup: { type: "string", default: "2000" },
    duration: { type: "string", default: "5000" },
    connections: { type: "string", default: "64" },
    slots: { type: "string", default: "64" },
    breakdown: { type: "boolean", default: false },
    only: { type: "string" },
    variant: { type: "string", multiple: true, default: [] },
  },
});

const custom = values.variant.map(parseVariant);
const wanted = values.only?.split(",");
const variants = [
  ...(wanted ? wanted.map((n) => CATALOG.find((v) => v.name === n) ?? fail(`unknown variant ${n}`)) : []),
  ...custom,
];
if (variants.length === 0) variants.push(...CATALOG);

function fail(message: string): never {
  throw new Error(message);
}

interface Sample {
  idleRss: number;
  peakRss: number;
  rps: number;
  cpuPerRequest: number;
  p50: number;
  errors: number;
  breakdown?: Record<string, unknown>;
}

interface Running {
  pid: number;
  port: number;
  workerPid?: number;
  stop(): Promise<void>;
}

const PROBE = join(ROOT, "bench/lib/memory-probe.ts");

async function start(variant: Variant, keys: BenchKeys, mockUrl: string, probeFile?: string): Promise<Running> {
  const flags = [
    ...(variant.v8.length ? [`--v8-flags=${variant.v8.join(",")}`] : []),
    ...(probeFile ? ["--preload", PROBE] : []),
  ];
  const probeEnv: Record<string, string> = probeFile ? { AUXOT_MEMORY_PROBE: probeFile } : {};
  if (variant.server === "hello") {
    const child = spawnChild(variant.name, Deno.execPath(), [
      "run",
      "-A",
      ...flags,
      join(ROOT, "bench/lib/hello-serve.ts"),
    ], {
      env: { ...variant.env, ...probeEnv },
    });
    const { port } = JSON.parse(await child.firstLine) as { port: number };
    return { pid: child.pid, port, stop: child.stop };
  }
  const port = freePort();
  const root = variant.root ?? ROOT;
  const router = spawnChild(variant.name, Deno.execPath(), ["run", "-A", ...flags, join(root, "src/entry-deno.ts")], {
    cwd: root,
    env: await denoRouterEnv(port, keys, { ...variant.env, ...probeEnv }),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `${variant.name} /health`,
    async () => {
      const { status } = await getText(`${url}/health`, {}, 2_000);
      return status === 200 || status === 503 ? true : undefined;
    },
    30_000,
    router,
  );
  const worker = startGpuWorker(`worker (${variant.name})`, url, keys, [
    "--llama-url",
    mockUrl,
    "--slots",
    values.slots,
  ]);
  await waitForWorkers(url, worker, 60_000);
  return {
    pid: router.pid,
    port,
    workerPid: worker.pid,
    stop: async () => {
      await worker.stop();
      await router.stop();
    },
  };
}

async function measure(variant: Variant, keys: BenchKeys, mockUrl: string): Promise<Sample> {
  const probeFile = values.breakdown ? join(await benchTempDir(), `probe-${variant.name}.json`) : undefined;
  const running = await start(variant, keys, mockUrl, probeFile);
  try {
    const idleRss = rssBytes(running.pid);
    const idleBreakdown = probeFile ? await Deno.readTextFile(probeFile).catch(() => "{}") : undefined;
    const path: Path = {
      key: "router",
      label: variant.name,
      port: running.port,
      headers: variant.server === "router" ? { authorization: `Bearer ${keys.api}` } : {},
      pid: running.pid,
      others: running.workerPid ? [{ label: "worker", pid: running.workerPid }] : [],
      logs: () => "",
    };
    const result = await runThroughput({
      targets: [chatTarget(path, "Say hello. tokens=16")],
      rounds: 1,
      connections: Number(values.connections),
      warmupMs: Number(values.warmup),
      durationMs: Number(values.duration),
    });
    const w = result.targets[0].rounds[0];
    const breakdown = probeFile
      ? JSON.parse(await Deno.readTextFile(probeFile).catch(() => "{}")) as Record<string, unknown>
      : undefined;
    if (idleBreakdown) printBreakdown(`${variant.name} idle, before the load`, JSON.parse(idleBreakdown));
    return {
      idleRss,
      peakRss: peakRssBytes(running.pid),
      rps: w.requests / w.seconds,
      cpuPerRequest: (w.cpuMs[String(running.pid)] ?? NaN) / w.requests,
      p50: w.p50 ?? NaN,
      errors: w.errors,
      breakdown,
    };
  } finally {
    await running.stop();
  }
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const range = (xs: number[], f: (x: number) => string) =>
  `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;

function printBreakdown(name: string, b: Record<string, unknown>) {
  const r = b as {
    vmRss: number;
    fds: number;
    memoryUsage: Record<string, number>;
    heap: Record<string, number>;
    spaces: Record<string, number>;
    smaps: Record<string, number>;
    largestAnon: string[];
  };
  if (!r.vmRss) return console.log(`${name}: no probe record`);
  console.log(`\n${name} at its peak (VmRSS ${mb(r.vmRss)} MB, ${r.fds} open descriptors):`);
  console.log(
    `  Deno.memoryUsage: ${Object.entries(r.memoryUsage).map(([k, v]) => `${k} ${mb(v)}`).join(", ")} MB`,
  );
  console.log(`  V8 heap: ${Object.entries(r.heap).map(([k, v]) => `${k} ${mb(v)}`).join(", ")} MB`);
  console.log(
    `  V8 spaces (physical): ${
      Object.entries(r.spaces).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${mb(v)}`).join(", ")
    } MB`,
  );
  const smaps = Object.entries(r.smaps).sort((a, b) => b[1] - a[1]).filter(([, v]) => v >= 256 * 1024);
  console.log(`  smaps Rss by mapping: ${smaps.map(([k, v]) => `${k} ${mb(v)}`).join(", ")} MB`);
  console.log(`  largest anonymous mappings:\n    ${r.largestAnon.join("\n    ")}`);
}

const rounds = Number(values.rounds);
const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
console.error(
  `rss-study: ${
    variants.map((v) => v.name).join(", ")
  }; ${rounds} rounds × (${values.warmup} + ${values.duration} ms), ` +
    `${values.connections} connections; load average ${load} on ${navigator.hardwareConcurrency} CPUs`,
);
const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
try {
  const keys = await makeKeys();
  const mock = await startMock();
  for (let round = 0; round < rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const variant of order) {
      const s = await measure(variant, keys, mock.url);
      samples.get(variant.name)!.push(s);
      console.error(
        `round ${round + 1} ${variant.name}: peak ${mb(s.peakRss)} MB, ${s.rps.toFixed(0)} req/s, ` +
          `${s.cpuPerRequest.toFixed(3)} ms CPU/req, errors ${s.errors}`,
      );
      if (s.breakdown) printBreakdown(`${variant.name} (round ${round + 1})`, s.breakdown);
    }
  }
} finally {
  await stopAll();
}

const first = samples.get(variants[0].name)!;
/** Median over rounds of this variant's figure over the first variant's in the same round (paired: same load). */
const paired = (s: Sample[], f: (x: Sample) => number) =>
  `×${median(s.map((x, i) => f(x) / (first[i] ? f(first[i]) : NaN))).toFixed(2)}`;
console.log(
  `\n| variant | V8 flags / env | idle RSS MB | peak RSS MB (VmHWM) | CPU/request ms | req/s | p50 ms | errors | ` +
    `vs ${variants[0].name}, same round: peak RSS, CPU/req, req/s |`,
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const v of variants) {
  const s = samples.get(v.name)!;
  if (s.length === 0) continue;
  const env = Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`).join(" ");
  const cells = [
    v.name,
    [v.v8.join(" ") || "(none)", env].filter(Boolean).join("; "),
    range(s.map((x) => x.idleRss), mb),
    range(s.map((x) => x.peakRss), mb),
    range(s.map((x) => x.cpuPerRequest), (x) => x.toFixed(3)),
    range(s.map((x) => x.rps), (x) => x.toFixed(0)),
    median(s.map((x) => x.p50)).toFixed(2),
    String(s.reduce((n, x) => n + x.errors, 0)),
    [paired(s, (x) => x.peakRss), paired(s, (x) => x.cpuPerRequest), paired(s, (x) => x.rps)].join(", "),
  ];
  console.log(`| ${cells.join(" | ")} |`);
}
console.log(
  "\nMedians over rounds (range in brackets). Peak RSS is the process's VmHWM over its whole life (start-up, " +
    "warm-up and the measured window); CPU/request is the process's CPU (utime+stime) in the measured window over " +
    "the requests completed in it. The worker's and the load generator's CPU share the same 2 cores.",
);
