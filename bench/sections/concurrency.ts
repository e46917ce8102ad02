/**
 * (8) Many streams at once under workerd: the acceptance test of tests/workers/concurrency-workerd.test.ts at the
 * benchmark's size — 256 concurrent streaming requests against the router bundle under real workerd on the Upstash
 * store (REST bridge → redis-server), served by real long-polling workers (scripted engine, in this process). Every
 * answer must be complete and exactly once; none may be cancelled by workerd.
 */
import { startWorkersStack } from "../../tests/fixtures/workers-stack.ts";
import { runConcurrency } from "../../tests/workers/concurrency.ts";
import type { BenchContext } from "../context.ts";
import { num } from "../lib/stats.ts";

export async function concurrencySection(ctx: BenchContext): Promise<void> {
  const streams = ctx.settings.mode === "quick" ? 32 : 256;
  const section = ctx.report.section(`8. ${streams} concurrent streams under workerd (Upstash store)`);
  ctx.log(`concurrency: ${streams} streams under workerd`);
  const stack = await startWorkersStack();
  try {
    const result = await runConcurrency(stack, {
      streams,
      nonStreams: 0,
      words: 50,
      tokenDelayMs: 10,
      workers: 8,
      slotsPerWorker: Math.ceil(streams / 8),
      deadlineMs: 120_000,
    });
    const completed = result.tally.completed ?? 0;
    section.tables.push({
      header: ["Streams", "Completed", "Failed", "Cancelled (hung)", "Duplicated/missing", "Seconds"],
      rows: [[
        String(streams),
        num(completed),
        num((result.tally.failed ?? 0) + (result.tally.malformed ?? 0) + (result.tally.connection_lost ?? 0)),
        num((result.tally.hung ?? 0) + result.hungLogLines.length),
        num((result.tally.duplicated ?? 0) + (result.tally.truncated ?? 0)),
        result.seconds.toFixed(1),
      ]],
    });
    if (result.failures.length > 0) section.notes.push(`First failures: ${result.failures.slice(0, 3).join("; ")}`);
    section.notes.push(
      "50 tokens each at 100 tokens/s; 8 workers in the benchmark's process; workerd's own log checked for hung or " +
        "cancelled requests.",
    );
    ctx.report.target({
      target: `${streams} concurrent streams under workerd, all complete`,
      goal: "all",
      measured: `${completed} / ${streams}`,
      met: completed === streams && result.hungLogLines.length === 0,
    });
  } finally {
    await stack.close();
  }
}
