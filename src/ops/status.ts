/**
 * `GET /api/status` (admin key): the fleet as the store sees it (every worker with what it serves, its slots and
 * speed), the queue, fleet-wide counters, this instance's latency histograms and recent jobs, and the configuration
 * without secrets. One call costs a small fixed number of store commands whatever the fleet size: one `fleet()`,
 * plus, when counters are shared, at most one flush and one read, and on Upstash one read of the last hour's
 * command counts (`storeCost`: the month's projection against Upstash's free tier). No prompt or output text appears here.
 */
import { modelsView } from "../policy/route.ts";
import { describeConfig } from "../config.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { type HistogramSummary, parseSeriesKey, STORE_COMMANDS } from "../metrics.ts";
import type { WorkerStatus } from "../store/store.ts";
import type { JobRecord } from "./job-log.ts";

export interface WorkerView {
  id: string;
  name?: string;
  kind: string;
  version?: string;
  model?: string;
  quantization?: string;
  ctxSize?: number;
  parallel?: number;
  /** Why the worker chose less than the policy asked for. */
  note?: string;
  /** Loaded the router's current policy (tools workers always are). */
  ready: boolean;
  backend?: string;
  gpu?: string;
  vramBytes?: number;
  slots: number;
  free: number;
  activeJobs: number;
  tokensPerSecond?: number;
  lastSeenAt: number;
  tools?: string[];
  /** Several-model workers: every model served, with its free and total slots. */
  models?: { model: string; kind: string; slots: number; free: number }[];
}

export interface CounterSummary {
  requests: { total: number; byApi: Record<string, number>; byStatusClass: Record<string, number> };
  jobs: Record<string, number>;
  tokens: { prompt: number; completion: number; cached: number };
  authFailures: number;
  toolCalls: Record<string, Record<string, number>>;
  storeCommands: number;
}

export interface StatusReport {
  /** Router clock (ms since the epoch) when the report was made. */
  time: number;
  instance: { id: string; startedAt: number; store: string; countersShared: boolean };
  health: { status: "ok" | "degraded"; reason?: string };
  config: Record<string, unknown>;
  policy: { engine: string; model: string; quantization: string; version: string };
  workers: WorkerView[];
  slots: { total: number; free: number };
  queue: { depth: number; byLane: Record<string, number> };
  running: number;
  counters: CounterSummary;
  /** This instance only (histograms are not shared). */
  latency: { ttft: HistogramSummary; queueWait: HistogramSummary; outputTokensPerSecond: HistogramSummary };
  recentJobs: JobRecord[];
  /** Per model of the policy: queue depth, ready workers serving it, their slots. */
  models: ReturnType<typeof modelsView>;
  /** Billed stores (Upstash): what the store costs, fleet-wide. */
  storeCost?: StoreCost;
}

/** Upstash's free tier: commands a month (pay-as-you-go beyond: $0.20 per 100K). */
export const UPSTASH_FREE_COMMANDS_PER_MONTH = 500_000;
const MINUTES_PER_MONTH = 30.44 * 24 * 60;

export interface StoreCost {
  /** Store commands in the last hour, every instance (flushed counts: up to ~20 s behind, idle up to 15 min). */
  commandsLastHour: number;
  /** The last hour's rate over a month (30.44 days). */
  projectedPerMonth: number;
  freeTierPerMonth: number;
  /** projectedPerMonth / freeTierPerMonth (1 = the whole free tier). */
  shareOfFreeTier: number;
}

async function storeCost(ctx: RouterContext): Promise<StoreCost | undefined> {
  if (!ctx.store.commandsInLast) return undefined;
  const commandsLastHour = await ctx.store.commandsInLast(60);
  const projectedPerMonth = Math.round(commandsLastHour / 60 * MINUTES_PER_MONTH);
  return {
    commandsLastHour,
    projectedPerMonth,
    freeTierPerMonth: UPSTASH_FREE_COMMANDS_PER_MONTH,
    shareOfFreeTier: Math.round(projectedPerMonth / UPSTASH_FREE_COMMANDS_PER_MONTH * 1000) / 1000,
  };
}

/**
 * Identifies this process or isolate, so that a client can tell when per-instance figures changed hands. Made on
 * first use: Workers forbid random values at global scope.
 */
let instance: { id: string; startedAt: number } | undefined;

export async function statusReport(ctx: RouterContext): Promise<StatusReport> {
  const [fleet, totals, cost] = await Promise.all([
    ctx.store.fleet(),
    ctx.metrics.counterTotals(),
    storeCost(ctx).catch(() => undefined),
  ]);
  const policy = ctx.config.policy;
  const workers = fleet.workers.map((w) => workerView(w, policy.version));
  const serving = workers.filter((w) => w.ready && w.kind !== "tools");
  const slots = serving.reduce((n, w) => n + w.slots, 0);
  const free = serving.reduce((n, w) => n + w.free, 0);
  const depth = Object.values(fleet.queued).reduce((a, b) => a + b, 0);
  instance ??= { id: crypto.randomUUID().slice(0, 8), startedAt: ctx.now() };
  return {
    time: ctx.now(),
    instance: { ...instance, store: ctx.store.kind, countersShared: ctx.metrics.shared },
    health: healthOf(workers, serving.length, free, depth),
    config: describeConfig(ctx.config),
    policy: {
      engine: policy.engine,
      model: policy.model.name,
      quantization: policy.model.quantization ?? "auto",
      version: policy.version,
    },
    workers,
    slots: { total: slots, free },
    // Lanes are "chat:<model>", "embed:<model>" and "tool:<name>": few, chosen by the operator.
    queue: { depth, byLane: { ...fleet.queued } },
    models: modelsView(policy, fleet.workers, fleet.queued),
    running: fleet.running,
    counters: summarize(totals),
    latency: {
      ttft: ctx.metrics.ttft.summary(),
      queueWait: ctx.metrics.queueWait.summary(),
      outputTokensPerSecond: ctx.metrics.outputSpeed.summary(),
    },
    recentJobs: ctx.metrics.jobLog.recent(30),
    ...(cost ? { storeCost: cost } : {}),
  };
}

function workerView(w: WorkerStatus, policyVersion: string): WorkerView {
  const info = w.info;
  const loaded = info.loaded;
  return {
    id: info.id,
    ...(info.name ? { name: info.name } : {}),
    kind: info.kind,
    ...(info.version ? { version: info.version } : {}),
    ...(loaded
      ? {
        model: loaded.model,
        quantization: loaded.quantization,
        ctxSize: loaded.ctxSize,
        parallel: loaded.parallel,
        note: loaded.note,
      }
      : {}),
    ready: info.kind === "tools" || loaded?.policyVersion === policyVersion,
    backend: info.hardware?.backend,
    gpu: info.hardware?.gpu,
    vramBytes: info.hardware?.vramBytes,
    slots: info.slots,
    free: info.free,
    activeJobs: w.activeJobs,
    tokensPerSecond: info.tokensPerSecond,
    lastSeenAt: w.lastSeenAt,
    ...(info.tools ? { tools: info.tools.map((t) => t.name) } : {}),
    ...(info.models
      ? { models: info.models.map((m) => ({ model: m.model, kind: m.kind, slots: m.slots, free: m.free })) }
      : {}),
  };
}

function healthOf(workers: WorkerView[], ready: number, free: number, depth: number): StatusReport["health"] {
  const serving = workers.filter((w) => w.kind !== "tools").length;
  if (serving === 0) {
    return { status: "degraded", reason: "No worker is connected: requests wait in the queue until one connects." };
  }
  if (ready === 0) return { status: "degraded", reason: "Workers are connected but still loading the model." };
  if (free === 0 && depth > 0) return { status: "ok", reason: "All slots are busy: requests are queued." };
  return { status: "ok" };
}

export function summarize(totals: Record<string, number>): CounterSummary {
  const out: CounterSummary = {
    requests: { total: 0, byApi: {}, byStatusClass: {} },
    jobs: {},
    tokens: { prompt: 0, completion: 0, cached: 0 },
    authFailures: 0,
    toolCalls: {},
    storeCommands: 0,
  };
  const add = (record: Record<string, number>, key: string, value: number) => record[key] = (record[key] ?? 0) + value;
  for (const [key, value] of Object.entries(totals)) {
    const series = parseSeriesKey(key);
    if (!series) continue;
    const l = series.labels;
    switch (series.name) {
      case "auxot_requests_total":
        out.requests.total += value;
        add(out.requests.byApi, l.api ?? "other", value);
        add(out.requests.byStatusClass, `${(l.status ?? "0")[0]}xx`, value);
        break;
      case "auxot_jobs_total":
        add(out.jobs, l.outcome ?? "unknown", value);
        break;
      case "auxot_tokens_total":
        if (l.kind === "prompt" || l.kind === "completion" || l.kind === "cached") out.tokens[l.kind] += value;
        break;
      case "auxot_auth_failures_total":
        out.authFailures += value;
        break;
      case "auxot_tool_calls_total":
        add(out.toolCalls[l.tool ?? "unknown"] ??= {}, l.outcome ?? "unknown", value);
        break;
      case STORE_COMMANDS:
        out.storeCommands += value;
        break;
    }
  }
  return out;
}
