/**
 * (1) Per-request overhead: sequential non-streaming requests, the paths interleaved round by round after a
 * generous warm-up; per path the median over rounds of each round's p50/p90/p99, and the overhead over the direct
 * call paired round by round (gateway round p50 − direct round p50, median over rounds).
 */
import { type BenchContext, chatTarget, logNote, NON_STREAM_MESSAGE } from "../context.ts";
import { runSequential } from "../lib/run-load.ts";
import { median, medianSpread, ms, percentile, plusMs } from "../lib/stats.ts";

export interface LatencyFigures {
  /** Overhead over direct at p50, per path key. */
  overheadP50: Record<string, number>;
}

export async function latencySection(ctx: BenchContext): Promise<LatencyFigures> {
  const s = ctx.settings.latency;
  const section = ctx.report.section("1. Per-request overhead (sequential, non-streaming)");
  ctx.log(`latency: ${ctx.paths.length} paths × ${s.rounds} rounds × ${s.perRound} (warm-up ${s.warmup} each)`);
  const result = await runSequential({
    targets: ctx.paths.map((p) => chatTarget(p, NON_STREAM_MESSAGE)),
    warmup: s.warmup,
    rounds: s.rounds,
    perRound: s.perRound,
    stream: false,
    keepBody: false,
  }, 900_000);
  const rounds = (key: string) =>
    result.targets.find((t) => t.name === key)?.rounds.map((r) => r.map((x) => x.endMs)) ?? [];
  const direct = rounds("direct");
  const paired = (key: string, q: number) =>
    median(rounds(key).map((r, i) => percentile(r, q) - percentile(direct[i] ?? [], q)));
  const figures: LatencyFigures = { overheadP50: {} };
  const rows = ctx.paths.map((path) => {
    const spread = medianSpread(rounds(path.key));
    const failures = result.targets.find((t) => t.name === path.key);
    const isDirect = path.key === "direct";
    if (!isDirect) figures.overheadP50[path.key] = paired(path.key, 0.5);
    return [
      path.label,
      ms(spread.p50),
      ms(spread.p90),
      ms(spread.p99),
      isDirect ? "(baseline)" : plusMs(paired(path.key, 0.5)),
      isDirect ? "(baseline)" : plusMs(paired(path.key, 0.99)),
      failures?.errors ? `${failures.errors} (${failures.firstError})` : "0",
    ];
  });
  section.tables.push({
    header: ["Path", "p50", "p90", "p99", "Overhead p50", "Overhead p99", "Errors"],
    rows,
  });
  section.notes.push(
    `${s.rounds} rounds × ${s.perRound} requests per path, interleaved, after ${s.warmup} warm-up requests each; ` +
      "figures are medians over rounds; overhead is paired by round (gateway − direct).",
  );
  for (const path of ctx.paths) {
    if (result.targets.find((t) => t.name === path.key)?.errors) section.notes.push(logNote(path));
  }
  const routerOverhead = figures.overheadP50.router;
  // The fastest peer measured in this run sets the second bar (a peer that did not run sets none).
  const peers = ["portkey", "litellm"].map((k) => figures.overheadP50[k]).filter(Number.isFinite);
  const fastestPeer = peers.length ? Math.min(...peers) : Infinity;
  ctx.report.target({
    target: "Overhead p50, embedded store",
    goal: "≤ 1.0 ms and ≤ the fastest peer's",
    measured: `${plusMs(routerOverhead)}${
      Number.isFinite(fastestPeer) ? ` (fastest peer ${plusMs(fastestPeer)})` : ""
    }`,
    met: Number.isFinite(routerOverhead) ? routerOverhead <= Math.min(1.0, fastestPeer) : undefined,
  });
  return figures;
}
