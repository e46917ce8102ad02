/**
 * (2) Streaming: a paced stream from the mock (N words, a fixed pause between words, the first at once) through
 * each path; time to the first content chunk and to the last byte, medians over interleaved rounds, and what each
 * gateway adds (paired by round): to the first chunk, and per token (last-byte difference ÷ tokens).
 */
import { type BenchContext, chatTarget, logNote } from "../context.ts";
import { runSequential } from "../lib/run-load.ts";
import { median, ms, percentile, plusMs } from "../lib/stats.ts";

export async function streamingSection(ctx: BenchContext): Promise<void> {
  const s = ctx.settings.streaming;
  const section = ctx.report.section("2. Streaming (time to first content chunk, to last byte)");
  ctx.log(`streaming: ${ctx.paths.length} paths × ${s.rounds} rounds × ${s.perRound} streams of ${s.tokens} tokens`);
  const message = `Stream please. tokens=${s.tokens} interval=${s.intervalMs}`;
  const result = await runSequential({
    targets: ctx.paths.map((p) => chatTarget(p, message, { stream: true })),
    warmup: s.warmup,
    rounds: s.rounds,
    perRound: s.perRound,
    stream: true,
    keepBody: false,
  }, 900_000);
  const rounds = (key: string, pick: "firstContentMs" | "endMs") =>
    result.targets.find((t) => t.name === key)?.rounds.map((r) => r.map((x) => x[pick] ?? NaN)) ?? [];
  const perRound = (key: string, pick: "firstContentMs" | "endMs", q: number) =>
    rounds(key, pick).map((r) => percentile(r.filter(Number.isFinite), q));
  const paired = (key: string, pick: "firstContentMs" | "endMs") => {
    const direct = perRound("direct", pick, 0.5);
    return median(perRound(key, pick, 0.5).map((v, i) => v - (direct[i] ?? NaN)));
  };
  let routerFirstChunk = NaN;
  const rows = ctx.paths.map((path) => {
    const isDirect = path.key === "direct";
    const firstAdded = paired(path.key, "firstContentMs");
    const lastAdded = paired(path.key, "endMs");
    if (path.key === "router") routerFirstChunk = firstAdded;
    const failures = result.targets.find((t) => t.name === path.key);
    const missingContent = rounds(path.key, "firstContentMs").flat().filter((v) => !Number.isFinite(v)).length;
    return [
      path.label,
      ms(median(perRound(path.key, "firstContentMs", 0.5))),
      ms(median(perRound(path.key, "firstContentMs", 0.99))),
      ms(median(perRound(path.key, "endMs", 0.5))),
      isDirect ? "(baseline)" : plusMs(firstAdded),
      isDirect ? "(baseline)" : plusMs(lastAdded / s.tokens),
      (failures?.errors ? `${failures.errors} (${failures.firstError})` : "0") +
      (missingContent ? `; ${missingContent} without content` : ""),
    ];
  });
  section.tables.push({
    header: [
      "Path",
      "First chunk p50",
      "First chunk p99",
      "Last byte p50",
      "Added to first chunk",
      "Added per token",
      "Errors",
    ],
    rows,
  });
  section.notes.push(
    `${s.tokens}-token streams, ${s.intervalMs} ms between tokens at the engine (first token at once); ` +
      `${s.rounds} rounds × ${s.perRound} per path, interleaved, after ${s.warmup} warm-up streams each. ` +
      "Added figures are paired by round against the direct call; per token = last-byte difference ÷ tokens.",
  );
  for (const path of ctx.paths) {
    if (result.targets.find((t) => t.name === path.key)?.errors) section.notes.push(logNote(path));
  }
  ctx.report.target({
    target: "First streamed chunk added, embedded store",
    goal: "≤ 5 ms",
    measured: plusMs(routerFirstChunk),
    met: Number.isFinite(routerFirstChunk) ? routerFirstChunk <= 5 : undefined,
  });
}
