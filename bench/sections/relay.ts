/**
 * (10) Relay at realistic engine rates: the mock engine paced at 50, 200 and 1,000 tokens/s (a pause between
 * words, the first at once) streamed directly and through each gateway (the router with its worker on the embedded
 * store, the peers), interleaved round by round. Tokens/s end to end (tokens ÷ time to the last byte) and its ratio
 * to the direct call: at a GPU's pace the relay's cost, not the 2-core machine's contention, is what shows. The
 * real-inference section (6) gives the tiny model flat out beside it.
 */
import { type BenchContext, chatTarget, logNote, type PathKey } from "../context.ts";
import { runSequential } from "../lib/run-load.ts";
import { median, num, percentile, ratio } from "../lib/stats.ts";

/** The paths this section streams through: the headline router and the peers (the Upstash paths are in 2–4). */
const RELAY_PATHS: PathKey[] = ["direct", "router", "router-baseline", "portkey", "litellm"];

export interface RelayFigures {
  /** Router ÷ direct tokens/s, per engine rate (tokens/s). */
  routerRatio: Record<number, number>;
}

export async function relaySection(ctx: BenchContext): Promise<RelayFigures> {
  const s = ctx.settings.relay;
  const section = ctx.report.section("10. Relay at paced engine rates (streaming, tokens/s end to end)");
  const paths = ctx.paths.filter((p) => RELAY_PATHS.includes(p.key));
  const figures: RelayFigures = { routerRatio: {} };
  const rows: string[][] = [];
  for (const rate of s.rates) {
    const tokens = Math.max(s.minTokens, Math.round(rate * s.streamSeconds));
    const intervalMs = 1000 / rate;
    ctx.log(`relay: ${rate} tokens/s × ${tokens} tokens, ${paths.length} paths × ${s.rounds} rounds × ${s.perRound}`);
    const result = await runSequential({
      targets: paths.map((p) =>
        chatTarget(p, `Relay please. tokens=${tokens} interval=${intervalMs}`, { stream: true })
      ),
      warmup: s.warmup,
      rounds: s.rounds,
      perRound: s.perRound,
      stream: true,
      keepBody: false,
    }, 900_000);
    const perRound = (key: string) =>
      result.targets.find((t) => t.name === key)?.rounds.map((r) => percentile(r.map((x) => x.endMs), 0.5)) ?? [];
    const direct = perRound("direct");
    const directTps = median(direct.map((endMs) => tokens / (endMs / 1000)));
    for (const path of paths) {
      const rounds = perRound(path.key);
      const tps = median(rounds.map((endMs) => tokens / (endMs / 1000)));
      // Paired by round: the gateway's stream time against the direct stream of the same round.
      const paired = median(rounds.map((endMs, i) => (direct[i] ?? NaN) / endMs));
      if (path.key === "router") figures.routerRatio[rate] = paired;
      const failures = result.targets.find((t) => t.name === path.key);
      rows.push([
        `${num(rate)}/s (${tokens} tokens)`,
        path.label,
        num(tps, 1),
        path.key === "direct" ? "(baseline)" : ratio(paired),
        failures?.errors ? `${failures.errors} (${failures.firstError})` : "0",
      ]);
      if (failures?.errors) section.notes.push(logNote(path));
    }
    if (Number.isFinite(directTps) && directTps < rate * 0.9) {
      section.notes.push(
        `At ${rate} tokens/s the mock itself streamed ${num(directTps, 0)} tokens/s (its timers on a busy machine): ` +
          "the ratio compares like with like all the same.",
      );
    }
  }
  section.tables.push({ header: ["Engine rate", "Path", "Tokens/s", "vs direct", "Errors"], rows });
  section.notes.push(
    `${s.rounds} rounds × ${s.perRound} streams per path and rate, interleaved, after ${s.warmup} warm-up each; ` +
      "tokens/s = tokens ÷ time from sending the request to the last byte (so the first token's delay counts); " +
      "ratios are paired by round and the medians of those.",
  );
  const worst = Math.min(...Object.values(figures.routerRatio));
  ctx.report.target({
    target: `Relay tokens/s at ${s.rates.map((r) => num(r)).join(", ")} tokens/s (worst)`,
    goal: "≥ 0.97× direct",
    measured: ratio(worst),
    met: Number.isFinite(worst) ? worst >= 0.97 : undefined,
  });
  return figures;
}
