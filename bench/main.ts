/**
 * The benchmark suite: `deno task bench` (full, under 15 minutes on 2 cores) or `deno task bench --quick` (proves
 * the harness works in well under a minute; its figures mean nothing). Starts every system under test as its own
 * process on 127.0.0.1 — mock engine, router + worker (embedded store; Upstash store under Deno and under workerd,
 * via the REST bridge to a real redis-server), the Portkey gateway and the LiteLLM proxy as the peers — runs the
 * sections, and prints one Markdown table of figures, ratios and targets, also written to bench/results/latest.md. A part that cannot run
 * (peer not installable, Upstash store missing) is reported loudly as not measured; the rest still runs.
 *
 *   deno task bench [--quick] [--no-peer-install] [--out FILE]
 *                   [--sections latency,streaming,throughput,relay,commands,auth,inference,concurrency,cpu]
 *                   [--baseline DIR] [--no-upstash]
 *
 * `--baseline DIR` adds the embedded-store router of another checkout (e.g. `git worktree add --detach /tmp/base
 * main`) as one more path, so a change and its baseline are measured in the same run, interleaved.
 */
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { BenchContext, Path } from "./context.ts";
import { machineLoad } from "./lib/proc-stats.ts";
import { stopAll } from "./lib/process.ts";
import { Report } from "./lib/report.ts";
import { authSection } from "./sections/auth.ts";
import { concurrencySection } from "./sections/concurrency.ts";
import { workerdCpuSection } from "./sections/workerd-cpu.ts";
import { inferenceSection } from "./sections/inference.ts";
import { type LatencyFigures, latencySection } from "./sections/latency.ts";
import { markIdle, reportStoreCommands, storeCommandsSection } from "./sections/store-commands.ts";
import { relaySection } from "./sections/relay.ts";
import { streamingSection } from "./sections/streaming.ts";
import { type ThroughputFigures, throughputSection } from "./sections/throughput.ts";
import { workerdSection } from "./sections/workerd.ts";
import { FULL, QUICK } from "./settings.ts";
import { ensureLiteLLM, LITELLM_KEY, LITELLM_VERSION, startLiteLLM } from "./peer-litellm.ts";
import {
  type BenchKeys,
  ensurePeer,
  makeKeys,
  PEER_VERSION,
  portkeyHeaders,
  ROOT,
  startDenoRouter,
  startGpuWorker,
  startMock,
  startPortkey,
  startRedisBridge,
  startWorkerdRouter,
  waitForWorkers,
} from "./stack.ts";

const SECTIONS = [
  "latency",
  "streaming",
  "throughput",
  "relay",
  "commands",
  "auth",
  "inference",
  "concurrency",
  "cpu",
] as const;
type SectionName = typeof SECTIONS[number];

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n").slice(0, 3).join(" ").slice(0, 400);
}

async function commandText(command: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(command, { args, cwd: ROOT, stdin: "null", stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}

interface Needs {
  router: boolean;
  peer: boolean;
  upstash: boolean;
}

/** Which systems the chosen sections use (all of them for a whole run). */
function needsOf(wanted: Set<SectionName>): Needs {
  const comparing = wanted.has("latency") || wanted.has("streaming") || wanted.has("throughput");
  return {
    router: comparing || wanted.has("auth") || wanted.has("relay"),
    peer: comparing || wanted.has("relay"),
    upstash: comparing || wanted.has("commands"),
  };
}

/** The systems under test; each that fails to start is a loud "not measured" line, never a crash. */
async function startPaths(
  ctx: BenchContext,
  needs: Needs,
  options: { allowPeerInstall: boolean; baseline?: string },
): Promise<void> {
  const { settings, keys } = ctx;
  const mock = await startMock();
  ctx.paths.push({
    key: "direct",
    label: "Direct (mock engine)",
    port: mock.port,
    headers: {},
    pid: mock.pid,
    others: [],
    logs: mock.logs,
  });
  const workerArgs = ["--llama-url", mock.url, "--slots", String(settings.workerSlots)];
  const apiHeaders = { authorization: `Bearer ${keys.api}` };

  if (needs.router) await startEmbeddedRouter(ctx, workerArgs, apiHeaders);
  if (needs.router && options.baseline) await startEmbeddedRouter(ctx, workerArgs, apiHeaders, options.baseline);
  if (needs.peer) await startPeer(ctx, mock.url, options.allowPeerInstall);
  if (needs.peer) await startSecondPeer(ctx, mock.url, options.allowPeerInstall);
  if (needs.upstash) await startUpstashRouters(ctx, workerArgs, apiHeaders);
}

async function startEmbeddedRouter(
  ctx: BenchContext,
  workerArgs: string[],
  apiHeaders: Record<string, string>,
  baseline?: string,
) {
  const { keys, log, report } = ctx;
  const which = baseline ? `baseline router (embedded, ${baseline})` : "router (embedded store)";
  log(`starting the ${which} and its worker`);
  try {
    const router = await startDenoRouter({ name: which, keys, root: baseline });
    const worker = startGpuWorker(`worker (${which})`, router.url, keys, workerArgs);
    await waitForWorkers(router.url, worker, 60_000);
    ctx.paths.push({
      key: baseline ? "router-baseline" : "router",
      label: baseline ? `Baseline: Auxot router, embedded store (${baseline})` : "Auxot router, embedded store (Deno)",
      port: router.port,
      headers: apiHeaders,
      pid: router.pid,
      others: [{ label: "worker", pid: worker.pid }],
      logs: router.logs,
    });
  } catch (err) {
    report.warn(`Auxot ${which} did not start: ${firstLine(err)}`);
  }
}

async function startPeer(ctx: BenchContext, mockUrl: string, allowInstall: boolean) {
  const { log, report } = ctx;
  const peerProblem = await ensurePeer(allowInstall, log);
  if (peerProblem) {
    report.warn(`Portkey (peer) NOT MEASURED: ${peerProblem}`);
  } else {
    log("starting the peer gateway (Portkey)");
    try {
      const portkey = await startPortkey();
      ctx.paths.push({
        key: "portkey",
        label: `Portkey gateway ${PEER_VERSION} (Node)`,
        port: portkey.port,
        headers: portkeyHeaders(mockUrl),
        pid: portkey.pid,
        others: [],
        logs: portkey.logs,
      });
    } catch (err) {
      report.warn(`Portkey (peer) NOT MEASURED: it did not start: ${firstLine(err)}`);
    }
  }
}

async function startSecondPeer(ctx: BenchContext, mockUrl: string, allowInstall: boolean) {
  const { log, report } = ctx;
  const problem = await ensureLiteLLM(allowInstall, log);
  if (problem) {
    report.warn(`LiteLLM proxy ${LITELLM_VERSION} (peer) NOT MEASURED: ${problem}`);
    return;
  }
  log("starting the second peer gateway (LiteLLM proxy)");
  try {
    const litellm = await startLiteLLM(mockUrl);
    ctx.paths.push({
      key: "litellm",
      label: `LiteLLM proxy ${LITELLM_VERSION} (Python)`,
      port: litellm.port,
      headers: { authorization: `Bearer ${LITELLM_KEY}` },
      pid: litellm.pid,
      others: [],
      logs: litellm.logs,
    });
  } catch (err) {
    report.warn(`LiteLLM proxy (peer) NOT MEASURED: it did not start: ${firstLine(err)}`);
  }
}

async function startUpstashRouters(ctx: BenchContext, workerArgs: string[], apiHeaders: Record<string, string>) {
  const { keys, log, report } = ctx;
  log("starting the router with the Upstash store (REST bridge → redis-server) and its worker");
  try {
    const bridge = await startRedisBridge();
    const router = await startDenoRouter({
      name: "router (Upstash)",
      keys,
      env: { AUXOT_REDIS_URL: bridge.url, AUXOT_REDIS_TOKEN: bridge.token },
    });
    const worker = startGpuWorker("worker (Upstash)", router.url, keys, workerArgs);
    await waitForWorkers(router.url, worker, 60_000);
    ctx.paths.push({
      key: "router-upstash",
      label: "Auxot router, Upstash store (Deno)",
      port: router.port,
      headers: apiHeaders,
      pid: router.pid,
      others: [{ label: "worker", pid: worker.pid }, { label: "bridge", pid: Deno.pid }],
      bridge,
      logs: router.logs,
    });
  } catch (err) {
    report.warn(`Upstash store NOT AVAILABLE (Deno router): ${firstLine(err)}`);
  }

  log("starting the router under workerd (Upstash store) and its worker");
  try {
    const bridge = await startRedisBridge();
    const router = await startWorkerdRouter(keys, bridge);
    const worker = startGpuWorker("worker (workerd)", router.url, keys, workerArgs);
    await waitForWorkers(router.url, worker, 60_000);
    ctx.paths.push({
      key: "workerd",
      label: "Auxot router, Upstash store (workerd)",
      port: router.port,
      headers: apiHeaders,
      pid: router.pid,
      others: [{ label: "worker", pid: worker.pid }, { label: "bridge", pid: Deno.pid }],
      bridge,
      logs: router.logs,
    });
  } catch (err) {
    report.warn(`Router under workerd NOT AVAILABLE: ${firstLine(err)}`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      "no-peer-install": { type: "boolean", default: false },
      sections: { type: "string" },
      out: { type: "string" },
      baseline: { type: "string" },
      "no-upstash": { type: "boolean", default: false },
    },
    strict: true,
  });
  const settings = values.quick ? QUICK : FULL;
  const wanted = new Set<SectionName>(
    values.sections ? values.sections.split(",").map((s) => s.trim() as SectionName) : SECTIONS,
  );
  for (const name of wanted) {
    if (!SECTIONS.includes(name)) throw new Error(`unknown section "${name}": use ${SECTIONS.join(",")}`);
  }
  const started = Date.now();
  const loadBefore = machineLoad();
  const report = new Report(settings.mode === "full");
  const log = (line: string) => console.error(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${line}`);
  const onSignal = () => {
    log("interrupted: stopping every process started");
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // The in-process Upstash bridge (a test fixture) can reject a promise nobody awaits when a client aborts
  // mid-request: count it instead of dying with every child process left running.
  const strays: string[] = [];
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    strays.push(firstLine(event.reason));
  });

  let failures = 0;
  const keys: BenchKeys = await makeKeys();
  const ctx: BenchContext = { settings, report, keys, paths: [] as Path[], log };
  const run = async <T>(name: string, body: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await body();
    } catch (err) {
      failures++;
      log(`${name} FAILED: ${err instanceof Error ? err.stack ?? err.message : err}`);
      report.warn(`Section "${name}" FAILED: ${firstLine(err)}`);
      return undefined;
    }
  };

  try {
    const needs = needsOf(wanted);
    if (values["no-upstash"]) {
      needs.upstash = false;
      report.warn("The Upstash-store paths were left out (--no-upstash).");
    }
    await startPaths(ctx, needs, { allowPeerInstall: !values["no-peer-install"], baseline: values.baseline });
    log(`paths under test: ${ctx.paths.map((p) => p.key).join(", ")}`);
    let latency: LatencyFigures | undefined;
    let throughput: ThroughputFigures | undefined;
    if (wanted.has("latency")) latency = await run("latency", () => latencySection(ctx));
    if (wanted.has("streaming")) await run("streaming", () => streamingSection(ctx));
    if (wanted.has("throughput")) throughput = await run("throughput", () => throughputSection(ctx));
    if (wanted.has("relay")) await run("relay", () => relaySection(ctx));
    const upstash = ctx.paths.some((p) => p.bridge);
    const commands = wanted.has("commands") && upstash
      ? await run("commands", () => storeCommandsSection(ctx))
      : undefined;
    if (wanted.has("commands") && !upstash) {
      report.section("4. Upstash store: Redis commands").notes.push(
        "NOT MEASURED: the Upstash store is not available (see the warnings).",
      );
    }
    // The Upstash routers stay idle from here on: their command counts over the next sections are the idle cost.
    const idle = markIdle(ctx);
    if (wanted.has("auth")) await run("auth", () => authSection(ctx));
    if (wanted.has("inference")) await run("inference", () => inferenceSection(ctx));
    if (wanted.has("concurrency")) await run("concurrency", () => concurrencySection(ctx));
    if (wanted.has("cpu")) await run("cpu", () => workerdCpuSection(ctx));
    if (commands) {
      const remaining = settings.commands.minIdleMs - (Date.now() - idle.at);
      if (remaining > 0) {
        log(`idle workers: waiting ${(remaining / 1000).toFixed(0)} s more to count idle store commands`);
        await new Promise((r) => setTimeout(r, remaining));
      }
      reportStoreCommands(ctx, commands, idle);
    }
    if (wanted.has("latency") || wanted.has("throughput")) workerdSection(ctx, latency, throughput);
  } catch (err) {
    failures++;
    report.warn(`The benchmark stopped early: ${firstLine(err)}`);
    log(`FAILED: ${err instanceof Error ? err.stack : err}`);
  } finally {
    await stopAll();
  }

  if (strays.length > 0) {
    report.warn(
      `${strays.length} unhandled promise rejection(s) in the benchmark process (the Upstash REST bridge fixture ` +
        `runs there), first: ${strays[0]}`,
    );
  }
  const loadAfter = machineLoad();
  const commit = await commandText("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = (await commandText("git", ["status", "--porcelain"])).length > 0;
  const header = [
    `- When: ${new Date().toISOString()} — mode: **${settings.mode}**${
      settings.mode === "quick" ? " (proves the harness works; the figures mean nothing)" : ""
    } — took ${((Date.now() - started) / 1000).toFixed(0)} s`,
    `- Machine: ${cpuModel()}, ${loadBefore.cpus} CPUs; load average (1 min) ${loadBefore.load1} before, ` +
    `${loadAfter.load1} after${
      loadBefore.load1 > loadBefore.cpus * 0.5 ? " — **the machine was busy: figures are noisy**" : ""
    }`,
    `- Software: Deno ${Deno.version.deno}, Node ${await commandText("node", ["--version"])}, commit ${commit || "?"}${
      dirty ? " (with uncommitted changes)" : ""
    }`,
    "- Every figure is a median over several interleaved rounds (see each section) on a shared machine; all " +
    "traffic on 127.0.0.1; the load generator is a separate process.",
  ];
  const markdown = report.render(header);
  console.log(markdown);
  const outFile = values.out ?? join(ROOT, "bench/results/latest.md");
  await Deno.mkdir(dirname(outFile), { recursive: true });
  await Deno.writeTextFile(outFile, markdown);
  log(`written to ${outFile}`);
  return failures > 0 ? 1 : 0;
}

Deno.exit(await main());
