/**
 * (7) The router under workerd vs under Deno, both with the Upstash store (Workers cannot use the embedded one):
 * the figures of sections 1 and 3 side by side, measured in the same interleaved rounds.
 */
import type { BenchContext } from "../context.ts";
import { ms, num, plusMs, ratio } from "../lib/stats.ts";
import type { LatencyFigures } from "./latency.ts";
import type { ThroughputFigures } from "./throughput.ts";

export function workerdSection(
  ctx: BenchContext,
  latency: LatencyFigures | undefined,
  throughput: ThroughputFigures | undefined,
): void {
  const section = ctx.report.section("7. Router under workerd vs under Deno (Upstash store both)");
  if (!ctx.paths.some((p) => p.key === "workerd") || !ctx.paths.some((p) => p.key === "router-upstash")) {
    section.notes.push("Not measured: the workerd or the Deno Upstash router did not start (see the warnings).");
    return;
  }
  const deno = "router-upstash", workerd = "workerd";
  const row = (label: string, a: number | undefined, b: number | undefined, format: (v: number) => string) => [
    label,
    a === undefined ? "–" : format(a),
    b === undefined ? "–" : format(b),
    a === undefined || b === undefined ? "–" : ratio(b / a),
  ];
  section.tables.push({
    header: ["Figure", "Deno", "workerd", "workerd ÷ Deno"],
    rows: [
      row("Overhead p50 over direct (sequential)", latency?.overheadP50[deno], latency?.overheadP50[workerd], plusMs),
      row("Requests/s (throughput)", throughput?.rps[deno], throughput?.rps[workerd], (v) => num(v)),
      row("p50 under load", throughput?.p50[deno], throughput?.p50[workerd], ms),
      row("p99 under load", throughput?.p99[deno], throughput?.p99[workerd], ms),
      row("CPU per request (router process)", throughput?.cpuPerRequest[deno], throughput?.cpuPerRequest[workerd], ms),
    ],
  });
  section.notes.push("From the Upstash rows of sections 1 and 3 (same rounds, same mock, each with its own worker).");
}
