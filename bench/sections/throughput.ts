/**
 * (3) Throughput: `connections` keep-alive connections sending non-streaming requests as fast as answers come, per
 * path, in interleaved rounds (warm-up, then a measured window); requests/s, latency p50/p99, CPU milliseconds per
 * request of the gateway's process (and of the worker or bridge beside it), and peak resident memory.
 */
import { type BenchContext, chatTarget, logNote, NON_STREAM_MESSAGE } from "../context.ts";
import { peakRssBytes } from "../lib/proc-stats.ts";
import { runThroughput } from "../lib/run-load.ts";
import { mb, median, ms, num, ratio } from "../lib/stats.ts";

export interface ThroughputFigures {
  rps: Record<string, number>;
  p50: Record<string, number>;
  p99: Record<string, number>;
  cpuPerRequest: Record<string, number>;
}

export async function throughputSection(ctx: BenchContext): Promise<ThroughputFigures> {
  const s = ctx.settings.throughput;
  const section = ctx.report.section(`3. Throughput (${s.connections} connections, non-streaming)`);
  ctx.log(`throughput: ${ctx.paths.length} paths × ${s.rounds} rounds × ${s.durationMs / 1000} s`);
  const result = await runThroughput({
    targets: ctx.paths.map((p) => chatTarget(p, NON_STREAM_MESSAGE)),
    rounds: s.rounds,
    connections: s.connections,
    warmupMs: s.warmupMs,
    durationMs: s.durationMs,
  });
  const figures: ThroughputFigures = { rps: {}, p50: {}, p99: {}, cpuPerRequest: {} };
  const rps = figures.rps;
  const rss: Record<string, number> = {};
  const rows = ctx.paths.map((path) => {
    const windows = result.targets.find((t) => t.name === path.key)?.rounds ?? [];
    const perSecond = median(windows.map((w) => w.requests / w.seconds));
    rps[path.key] = perSecond;
    const cpuPerRequest = (pid: number) => median(windows.map((w) => (w.cpuMs[String(pid)] ?? NaN) / w.requests));
    rss[path.key] = peakRssBytes(path.pid);
    figures.p50[path.key] = median(windows.map((w) => w.p50 ?? NaN));
    figures.p99[path.key] = median(windows.map((w) => w.p99 ?? NaN));
    figures.cpuPerRequest[path.key] = cpuPerRequest(path.pid);
    const others = path.others.map((o) => `${o.label} ${cpuPerRequest(o.pid).toFixed(2)} ms`).join(", ");
    const errors = windows.reduce((n, w) => n + w.errors, 0);
    const firstError = windows.find((w) => w.firstError)?.firstError;
    return [
      path.label,
      num(perSecond),
      ms(figures.p50[path.key]),
      ms(figures.p99[path.key]),
      `${cpuPerRequest(path.pid).toFixed(3)} ms`,
      others || "–",
      mb(rss[path.key]),
      errors || firstError ? `${errors}${firstError ? ` (${firstError})` : ""}` : "0",
    ];
  });
  section.tables.push({
    header: ["Path", "Requests/s", "p50", "p99", "CPU/request (gateway)", "CPU/request (others)", "Peak RSS", "Errors"],
    rows,
  });
  for (const path of ctx.paths) {
    const windows = result.targets.find((t) => t.name === path.key)?.rounds ?? [];
    if (windows.some((w) => w.errors > 0 || w.firstError)) section.notes.push(logNote(path));
  }
  const versusPortkey = rps.router / rps.portkey;
  section.notes.push(
    `${s.rounds} rounds per path, interleaved; each ${s.warmupMs / 1000} s warm-up + ${s.durationMs / 1000} s ` +
      "measured; medians over rounds. CPU from /proc/<pid>/stat during the measured window; peak RSS is VmHWM " +
      "over the whole run so far. The direct row's CPU and RSS are the mock engine's.",
    "The load generator is one JavaScript process: on 2 cores it competes with the system under test, so the " +
      "direct figure is a floor set by the generator, not the mock's limit.",
  );
  if (Number.isFinite(versusPortkey)) section.notes.push(`Router (embedded) vs Portkey: ${ratio(versusPortkey)}.`);
  const versusLiteLLM = rps.router / rps.litellm;
  if (Number.isFinite(versusLiteLLM)) section.notes.push(`Router (embedded) vs LiteLLM: ${ratio(versusLiteLLM)}.`);
  ctx.report.target({
    target: "Throughput vs Portkey, same run",
    goal: "≥ 2.5×",
    measured: ratio(versusPortkey),
    met: Number.isFinite(versusPortkey) ? versusPortkey >= 2.5 : undefined,
  });
  const routerCpu = figures.cpuPerRequest.router;
  ctx.report.target({
    target: "Router CPU per request (its process), embedded store",
    goal: "≤ 0.25 ms",
    measured: Number.isFinite(routerCpu) ? `${routerCpu.toFixed(3)} ms` : "–",
    met: Number.isFinite(routerCpu) ? routerCpu <= 0.25 : undefined,
  });
  ctx.report.target({
    target: "Router peak RSS, embedded store",
    goal: "≤ 120 MB",
    measured: mb(rss.router),
    met: Number.isFinite(rss.router) ? rss.router <= 120 * 1024 * 1024 : undefined,
  });
  return figures;
}
