/**
 * `deno task reliability`: the long version of the reliability and abuse suite, printing its figures as Markdown
 * tables (docs/reliability.md keeps the latest). Every run is bounded in count and time and stays on 127.0.0.1.
 *
 *   deno task reliability [--quick] [--only faults,failover,multi,load,abuse,fuzz,secrets]
 *                         [--fault bridge-outage,...] [--store embedded|upstash]   (one row of the faults table)
 *
 * --quick uses the CI sizes (under 2 minutes); the default sizes take about 10 minutes on 2 cores. Exits 1
 * when any run broke an invariant (a hung request, duplicated or truncated output, an error outside the API's shape,
 * a 5xx for a client's mistake, a leak, a secret in a log).
 */
import { parseArgs } from "node:util";
import { runAbuse } from "./abuse.ts";
import { faultsFor, runFaultScenario, type ScenarioFigures } from "./faults.ts";
import { FAILOVER_SILENCE, runKillLoop, runPrefillFreeze } from "./failover.ts";
import { runFuzz } from "./fuzz.ts";
import { runStreamingLoad } from "./load.ts";
import { runMultiInstance } from "./multi.ts";
import { runSecretsScenario } from "./secrets.ts";
import { MAX_FINISHED_TTL_MS, violations } from "./verdict.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    fault: { type: "string" },
    store: { type: "string" },
  },
});
const quick = values.quick ?? false;
const only = new Set((values.only ?? "faults,failover,multi,load,abuse,fuzz,secrets").split(","));
const problems: string[] = [];

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(" | ")} |`);
  console.log(`|${header.map(() => "---").join("|")}|`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
}

const mb = (n: number) => n.toFixed(0);

if (only.has("faults")) {
  const runs: ScenarioFigures[] = [];
  const stores = (["embedded", "upstash"] as const).filter((s) => !values.store || values.store === s);
  for (const store of stores) {
    const kinds = (quick ? ["mixed" as const] : [...faultsFor(store), "mixed" as const])
      .filter((kind) => !values.fault || values.fault.split(",").includes(kind));
    for (const fault of kinds) {
      const requests = quick ? (store === "upstash" ? 170 : 110) : fault === "mixed" ? 300 : 400;
      console.error(`faults: ${store} / ${fault}: ${requests} requests...`);
      const f = await runFaultScenario({
        store,
        fault,
        requests,
        concurrency: 16,
        intervalMs: quick ? 80 : 60,
        strikes: fault === "mixed" || quick ? undefined : 4,
      });
      runs.push(f);
      for (const p of violations(f)) problems.push(`faults ${store}/${fault}: ${p}`);
    }
  }
  table(
    "Faults (one router process, 3 scripted worker processes × 4 slots, lease 3 s)",
    [
      "store",
      "fault",
      "strikes",
      "requests",
      "completed",
      "of which re-queued",
      "continued",
      "failed (explicit error)",
      "connection cut",
      "hung",
      "duplicated",
      "truncated",
      "bad error shape",
      "leaked jobs",
      "leaked slots",
      "Redis keys w/o TTL",
      "job keys after sweep",
      "s",
    ],
    runs.map((f) => [
      f.store,
      f.fault,
      f.strikes,
      f.requests,
      f.tally.completed,
      f.requeuedThenCompleted,
      f.continuedThenCompleted,
      f.tally.failed,
      f.tally.connection_lost,
      f.tally.hung,
      f.tally.duplicated,
      f.tally.truncated,
      f.tally.malformed,
      f.leaks.jobs,
      f.leaks.busySlots,
      f.store === "upstash" ? f.leaks.redisKeysWithoutTtl + f.leaks.redisLiveIndexEntries : "–",
      f.store === "upstash" ? f.leaks.redisJobKeysAfterSweep : "–",
      f.seconds.toFixed(0),
    ]),
  );
}

if (only.has("failover")) {
  const kills = quick ? 10 : 50;
  const rows = [];
  const freezes = [];
  for (const store of ["embedded", "upstash"] as const) {
    console.error(`failover: ${store}: ${kills} kills of the worker serving a stream...`);
    const f = await runKillLoop({ store, kills });
    if (f.failed > 0) problems.push(`failover ${store}: ${f.failed} of ${f.kills} answers not exact`);
    rows.push([store, f.kills, f.exact, f.failed, f.p50Ms, f.p99Ms, Math.round(Math.max(...f.latenciesMs))]);
    const prefillMs = quick ? 6_000 : 20_000;
    console.error(`failover: ${store}: SIGSTOP during a ${prefillMs / 1000} s paced prefill...`);
    const z = await runPrefillFreeze({ store, prefillMs });
    if (!z.progressRespected || !z.completedAfterFreeze) problems.push(`failover ${store}: ${JSON.stringify(z)}`);
    freezes.push([
      store,
      `${prefillMs / 1000} s`,
      z.progressRespected ? "completed, not declared lost" : "DECLARED LOST",
      z.completedAfterFreeze ? "continued, completed" : "FAILED",
      Math.round(z.stopToDeclaredMs ?? NaN),
    ]);
  }
  table(
    `Failover: kill -9 of the worker serving a stream after 20 tokens, a second worker ready (scripted workers, ` +
      `5 ms a token, AUXOT_WORKER_SILENCE ${FAILOVER_SILENCE})`,
    ["store", "kills", "answers exact", "not exact / failed", "kill → next token p50 ms", "p99 ms", "max ms"],
    rows,
  );
  table(
    "Failover: SIGSTOP during a paced prefill (scripted worker reporting progress every 200 ms; silence window 2 s)",
    ["store", "prefill", "unfrozen", "frozen 1 s in", "SIGSTOP → declared lost ms"],
    freezes,
  );
}

if (only.has("multi")) {
  const requests = quick ? 150 : 600;
  console.error(`multi-instance: ${requests} requests${quick ? "" : ", then waiting for the finished-job TTL"}...`);
  const f = await runMultiInstance({ requests, waitForTtl: !quick });
  const t = f.tally;
  if (t.hung + t.duplicated + t.truncated + t.malformed > 0) problems.push(`multi: ${JSON.stringify(t)}`);
  const l = f.leaks;
  if (l.jobs + l.busySlots + l.redisJobKeysAfterSweep + l.redisLiveIndexEntries + l.redisKeysWithoutTtl > 0) {
    problems.push(`multi: leaks ${JSON.stringify(f.leaks)}`);
  }
  if (l.redisLongestJobTtlMs > MAX_FINISHED_TTL_MS) problems.push(`multi: job keys live ${l.redisLongestJobTtlMs} ms`);
  table(
    "Multi-instance: Deno (workers) + Deno (callers) + workerd (callers), one Upstash store",
    ["via", "requests", "completed", "failed (explicit)", "connection cut", "hung", "duplicated", "truncated"],
    (["deno", "workerd"] as const).map((via) => {
      const b = f.byInstance[via];
      const n = Object.values(b).reduce((a, c) => a + c, 0);
      return [via, n, b.completed, b.failed, b.connection_lost, b.hung, b.duplicated, b.truncated];
    }),
  );
  console.log(
    `\nStrikes: ${f.strikes.join("; ")}. Re-queued then completed: ${f.requeuedThenCompleted}. ` +
      `Leaked jobs ${f.leaks.jobs}, slots ${f.leaks.busySlots}; Redis keys without TTL ` +
      `${f.leaks.redisKeysWithoutTtl}, live index entries ${f.leaks.redisLiveIndexEntries}; job keys at the drain ` +
      `${f.leaks.redisJobKeys} (longest TTL ${(f.leaks.redisLongestJobTtlMs / 1000).toFixed(0)} s), after ` +
      (f.ttlWaitSeconds !== undefined
        ? `the routers' own sweeps (${f.ttlWaitSeconds.toFixed(0)} s later): ${f.leaks.redisJobKeysAfterSweep}.`
        : `a sweep past the TTL: ${f.leaks.redisJobKeysAfterSweep}.`),
  );
}

if (only.has("load")) {
  const runs = quick ? [{ store: "embedded" as const, callers: 1_000, waves: 1 }] : [
    { store: "embedded" as const, callers: 1_000, waves: 5, minSeconds: 100 },
    { store: "upstash" as const, callers: 1_000, waves: 3 },
  ];
  const rows = [];
  for (const run of runs) {
    console.error(`load: ${run.store}: ${run.callers} callers...`);
    const f = await runStreamingLoad(run);
    if (f.tally.completed !== f.requests) problems.push(`load ${run.store}: ${JSON.stringify(f.tally)}`);
    if (f.closeWaitAfter + f.callerConnectionsAfter + f.leakedJobs + f.leakedSlots > 0) {
      problems.push(`load ${run.store}: leaks ${JSON.stringify(f)}`);
    }
    rows.push([
      f.store,
      `${f.callers} × ${f.waves}`,
      f.tally.completed,
      f.requests - f.tally.completed,
      `${f.p50Ms} / ${f.p99Ms}`,
      `${mb(f.rssBeforeMb)} / ${mb(f.peakRssMb)} / ${mb(f.rssAfterMb)}`,
      f.rssPerWaveMb.join(" "),
      `${f.socketsBefore} / ${f.peakSockets} / ${f.socketsAfter}` +
      (f.storeConnectionsAfter ? ` (${f.storeConnectionsAfter} to the store)` : ""),
      f.closeWaitAfter,
      `${f.callerConnectionsAfter} of ${f.callerConnectionsClosed}`,
      f.leakedJobs + f.leakedSlots,
      f.seconds.toFixed(0),
    ]);
  }
  table(
    "Load: concurrent streaming callers (4 scripted worker processes × 64 slots)",
    [
      "store",
      "callers × waves",
      "completed",
      "errors",
      "p50 / p99 ms",
      "router RSS before / peak / after MB",
      "RSS after each wave MB",
      "sockets before / peak / after",
      "CLOSE_WAIT",
      "caller conns left",
      "leaked jobs+slots",
      "s",
    ],
    rows,
  );
}

if (only.has("abuse")) {
  const run = quick
    ? { slowConnections: 200, wrongKeys: 1_000, legitimate: 100 }
    : { slowConnections: 500, wrongKeys: 5_000, legitimate: 1_000, holdMs: 40_000 };
  console.error(`abuse: ${run.slowConnections} slow-loris connections, ${run.wrongKeys} wrong keys...`);
  const f = await runAbuse(run);
  if (f.legitimateTally.completed !== f.legitimate) problems.push(`abuse: ${JSON.stringify(f.legitimateTally)}`);
  if (f.clientConnectionsLeft + f.closeWaitAfter > 0) problems.push(`abuse: connections left ${JSON.stringify(f)}`);
  table(
    "Abuse: slow-loris and wrong keys from one client, legitimate streams alongside",
    ["what", "figure"],
    [
      ["legitimate streaming requests completed", `${f.legitimateTally.completed} of ${f.legitimate}`],
      ["wrong keys: answers", JSON.stringify(f.wrongKeyStatuses).replace(/[{}"]/g, "").replaceAll(",", ", ")],
      [
        "slow-loris connections answered (408) / closed by the router",
        `${f.slowAnswered} / ${f.slowClosedByRouter} of ${f.slowConnections} after ${f.holdSeconds.toFixed(0)} s`,
      ],
      ["router CPU during the abuse and load", `${f.routerCpuMs} ms over ${f.seconds.toFixed(1)} s`],
      ["router RSS before / peak", `${mb(f.rssBeforeMb)} / ${mb(f.peakRssMb)} MB`],
      ["router sockets before / peak / after", `${f.socketsBefore} / ${f.peakSockets} / ${f.socketsAfter}`],
      ["connections kept after their clients hung up", `${f.clientConnectionsLeft} of ${f.clientConnectionsClosed}`],
      ["sockets in CLOSE_WAIT after", f.closeWaitAfter],
    ],
  );
}

if (only.has("fuzz")) {
  const runs = quick ? 60 : 1_000;
  console.error(`fuzz: ${runs} runs per endpoint and kind...`);
  try {
    const f = await runFuzz(runs);
    if (f.unexpectedErrors.length > 0) problems.push(`fuzz: unexpected errors logged: ${f.unexpectedErrors[0]}`);
    if (!f.stillServes) problems.push("fuzz: the router no longer serves");
    table(
      `Fuzz (fast-check, ${runs} mutated + ${runs} hostile bodies per endpoint)`,
      ["endpoint", "requests", "statuses", "5xx"],
      f.stats.map((s) => [
        s.endpoint,
        s.requests,
        JSON.stringify(s.byStatus).replace(/[{}"]/g, "").replaceAll(",", ", "),
        Object.entries(s.byStatus).filter(([status]) => Number(status) >= 500).reduce((n, [, c]) => n + c, 0),
      ]),
    );
    console.log(`\nUnexpected errors logged: ${f.unexpectedErrors.length}; still serves: ${f.stillServes}.`);
  } catch (err) {
    problems.push(`fuzz: ${(err as Error).message.slice(0, 2_000)}`);
  }
}

if (only.has("secrets")) {
  console.error("secrets: a debug-level scenario...");
  const f = await runSecretsScenario(quick ? 40 : 200);
  if (f.leaks.length > 0) problems.push(`secrets: ${f.leaks.length} lines contain a secret: ${f.leaks[0]}`);
  table("Secrets at debug level", ["secrets searched", "log lines", "of them debug", "lines with a secret"], [[
    f.secrets,
    f.lines,
    f.debugLines,
    f.leaks.length,
  ]]);
}

if (problems.length > 0) {
  console.log(`\n${problems.length} problem(s):\n${problems.map((p) => `- ${p}`).join("\n")}`);
  Deno.exit(1);
}
console.log("\nAll invariants held.");
