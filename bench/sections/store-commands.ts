/**
 * (4) What the Upstash store costs in Redis commands (each one a billed Upstash request), counted by the REST
 * bridge: per non-streaming request, per long stream at a realistic GPU speed, and per minute of an idle worker
 * (its long polls plus the router's own background sweeps). Each Upstash path has its own bridge and redis-server,
 * so the counts never mix.
 */
import { type BenchContext, chatTarget, logNote, NON_STREAM_MESSAGE, type Path } from "../context.ts";
import { runSequential } from "../lib/run-load.ts";
import { num } from "../lib/stats.ts";

export interface IdleMark {
  at: number;
  counts: Map<Path, number>;
}

function upstashPaths(ctx: BenchContext): Path[] {
  return ctx.paths.filter((p) => p.bridge !== undefined);
}

export function markIdle(ctx: BenchContext): IdleMark {
  return { at: Date.now(), counts: new Map(upstashPaths(ctx).map((p) => [p, p.bridge!.commands()])) };
}

interface Row {
  perRequest: number;
  perLongStream: number;
  errors: string[];
}

export async function storeCommandsSection(ctx: BenchContext): Promise<Map<Path, Row>> {
  const s = ctx.settings.commands;
  const rows = new Map<Path, Row>();
  for (const path of upstashPaths(ctx)) {
    ctx.log(`store commands: ${path.label}`);
    const bridge = path.bridge!;
    const errors: string[] = [];
    let before = bridge.commands();
    const plain = await runSequential({
      targets: [chatTarget(path, NON_STREAM_MESSAGE)],
      warmup: 0,
      rounds: 1,
      perRound: s.requests,
      stream: false,
      keepBody: false,
    }, 300_000);
    const plainDone = plain.targets[0].rounds[0].length;
    const perRequest = (bridge.commands() - before) / plainDone;
    if (plain.targets[0].errors) errors.push(`${plain.targets[0].errors} failed (${plain.targets[0].firstError})`);

    before = bridge.commands();
    const long = await runSequential({
      targets: [chatTarget(path, `tokens=${s.longStreamTokens} interval=${s.longStreamIntervalMs}`, { stream: true })],
      warmup: 0,
      rounds: 1,
      perRound: s.longStreams,
      stream: true,
      keepBody: false,
    }, 300_000);
    const longDone = long.targets[0].rounds[0].length;
    const perLongStream = (bridge.commands() - before) / longDone;
    if (long.targets[0].errors) errors.push(`${long.targets[0].errors} failed (${long.targets[0].firstError})`);
    rows.set(path, { perRequest, perLongStream, errors });
  }
  // The idle window (markIdle, next) measures a worker long idle: first let the traffic's tail pass — its last
  // metric flush (≤ 20 s) and the one sweep that finds nothing live (on the next poll, ≤ 50 s): both belong to the
  // requests above, amortized there in a steady load.
  ctx.log("store commands: letting the traffic's tail settle before the idle window (55 s)");
  await new Promise((resolve) => setTimeout(resolve, ctx.settings.mode === "quick" ? 500 : 55_000));
  return rows;
}

/** Writes the section once the idle window (started with `markIdle`) has ended. */
export function reportStoreCommands(ctx: BenchContext, rows: Map<Path, Row>, idle: IdleMark): void {
  const s = ctx.settings.commands;
  const section = ctx.report.section("4. Upstash store: Redis commands");
  const minutes = (Date.now() - idle.at) / 60_000;
  const tokensPerSecond = Math.round(1000 / s.longStreamIntervalMs);
  const idle0 = idle.counts;
  const tableRows = upstashPaths(ctx).map((path) => {
    const row = rows.get(path);
    const idleCommands = (path.bridge!.commands() - (idle.counts.get(path) ?? NaN)) / minutes;
    return [
      path.label,
      num(row?.perRequest, 2),
      num(row?.perLongStream, 1),
      num(idleCommands, 1),
      row?.errors.join("; ") || "0",
    ];
  });
  section.tables.push({
    header: [
      "Path",
      "Commands / request",
      `Commands / ${s.longStreamTokens}-token stream`,
      "Commands / idle worker-minute",
      "Errors",
    ],
    rows: tableRows,
  });
  section.notes.push(
    `Counted by the Upstash REST bridge (a pipeline counts each command; Lua scripts count once). ` +
      `${s.requests} sequential non-streaming requests; ${s.longStreams} stream(s) of ${s.longStreamTokens} tokens ` +
      `at ${tokensPerSecond} tokens/s; idle: one connected worker and no traffic for ${(minutes * 60).toFixed(0)} s ` +
      "(the router's own background sweeps included). The windows count everything the bridge ran: a stream's own " +
      "commands (9–10 on Deno: enqueue, which hands the job to the parked worker, the worker's BLPOP that takes it, " +
      "its batches; on workerd 1 more, the caller's SUBSCRIBE) and the router's per-instance ones " +
      "landing in the window (a fleet read after 2 s without chat requests, a metrics flush ≤ 20 s after requests, " +
      "a sweep ≤ 1 per 30 s), which a sparse request really pays.",
    "Throughput, latency and streaming with the Upstash store are the Upstash rows of sections 1–3.",
  );
  for (const path of upstashPaths(ctx)) if (rows.get(path)?.errors.length) section.notes.push(logNote(path));
  // The targets, for every Upstash path (Deno and workerd).
  for (const path of upstashPaths(ctx)) {
    const row = rows.get(path);
    const idle = (path.bridge!.commands() - (idle0.get(path) ?? NaN)) / minutes;
    const check = (what: string, goal: number, value: number | undefined) =>
      ctx.report.target({
        target: `${what} (${path.label})`,
        goal: `≤ ${goal}`,
        measured: num(value, 2),
        met: value !== undefined && Number.isFinite(value) ? value <= goal : undefined,
      });
    check("Redis commands per non-streaming request", 5, row?.perRequest);
    check(
      `Redis commands per ${s.longStreamTokens}-token stream at ${tokensPerSecond} tokens/s`,
      12,
      row?.perLongStream,
    );
    check("Redis commands per idle worker-minute", 2, idle);
  }
}
