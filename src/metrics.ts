/**
 * Metrics with low-cardinality labels, rendered in Prometheus text format at /metrics and summarised by the status
 * API. Counters (requests, job outcomes, tokens, auth failures, tool calls, store commands) are fleet-wide when the
 * store is shared: each instance adds its deltas to the store (`JobStore.addCounters`) in one batched call at most
 * every few seconds, and a scrape renders the store's sums — on Workers no isolate lives long enough to hold them.
 * Histograms (time to first token, queue wait, output speed) and the recent-jobs log stay per instance.
 */
import { JobLog, JobTiming } from "./ops/job-log.ts";
import type { JobEvent } from "./protocol/events.ts";
import type { JobStore, ReapResult } from "./store/store.ts";

type Labels = Record<string, string>;

/** Series keys already built, by name and labels as given: a counter bumped per request need not sort and escape. */
const seriesKeys = new Map<string, string>();
const SERIES_KEYS_MAX = 4_096;

/** A series' identity, also its field name in the store: `name{a="x",b="y"}` with sorted, sanitised labels. */
export function seriesKey(name: string, labels: Labels = {}): string {
  let id = name;
  for (const k in labels) {
    const value = labels[k];
    if (value.includes("\u0000")) return buildSeriesKey(name, labels); // could alias another id: not cached
    id += `\u0000${k}\u0001${value}`;
  }
  let key = seriesKeys.get(id);
  if (key === undefined) {
    key = buildSeriesKey(name, labels);
    if (seriesKeys.size >= SERIES_KEYS_MAX) seriesKeys.clear();
    seriesKeys.set(id, key);
  }
  return key;
}

function buildSeriesKey(name: string, labels: Labels): string {
  const parts = Object.keys(labels).sort().map((k) => `${k}="${labelValue(labels[k])}"`);
  return parts.length ? `${name}{${parts.join(",")}}` : name;
}

const SERIES = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g;

/** The inverse of `seriesKey`, for sums read back from the store; undefined for a field that is not a series. */
export function parseSeriesKey(key: string): { name: string; labels: Labels } | undefined {
  const match = SERIES.exec(key);
  if (!match) return undefined;
  const labels: Labels = {};
  for (const [, k, v] of (match[2] ?? "").matchAll(LABEL)) labels[k] = v;
  return { name: match[1], labels };
}

/** Label values come from our code or configuration, but a tool name or status must never break the format. */
function labelValue(value: string): string {
  return value.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 64);
}

export class Counter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly onChange: (key: string, by: number) => void = () => {},
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    if (!(by > 0)) return;
    const key = seriesKey(this.name, labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
    this.onChange(key, by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(seriesKey(this.name, labels)) ?? 0;
  }
}

export interface HistogramSummary {
  count: number;
  sum: number;
  /** Estimated from the buckets (linear within a bucket); undefined with no observations. */
  p50?: number;
  p95?: number;
}

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.counts[i]++;
  }
  summary(): HistogramSummary {
    const round = (n: number) => Math.round(n * 1000) / 1000;
    if (this.count === 0) return { count: 0, sum: 0 };
    return { count: this.count, sum: round(this.sum), p50: round(this.quantile(0.5)), p95: round(this.quantile(0.95)) };
  }
  quantile(q: number): number {
    const rank = q * this.count;
    let below = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      if (this.counts[i] >= rank) {
        const lower = i === 0 ? 0 : this.buckets[i - 1];
        const inBucket = this.counts[i] - below;
        return lower + (this.buckets[i] - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
      }
      below = this.counts[i];
    }
    return this.buckets[this.buckets.length - 1];
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TOKENS_PER_SECOND = [1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500];

export const STORE_COMMANDS = "auxot_store_commands_total";

/** Series whose changes alone do not warrant a store command soon (an idle worker's polls). */
const QUIET_SERIES = ['auxot_requests_total{api="worker"'];
/** How often quiet deltas alone may cause a flush. */
const QUIET_FLUSH_MS = 15 * 60_000;

export interface Gauge {
  name: string;
  help: string;
  values: { labels?: Labels; value: number }[];
}

export interface ShareOptions {
  /** Keeps the delayed flush alive after a response (Workers' waitUntil). */
  background: (work: Promise<unknown>) => void;
  /** Sum counters in the store (default: when the store is shared, i.e. not embedded). */
  shared?: boolean;
  /** At most one flush per interval per instance (default 20 s). */
  flushIntervalMs?: number;
}

export class Metrics {
  readonly #pending = new Map<string, number>();
  #store?: JobStore;
  #shared = false;
  #background: (work: Promise<unknown>) => void = () => {};
  /** Each flush is a billed store command; 20 s stays inside Workers' 30 s waitUntil window after a response. */
  #flushIntervalMs = 20_000;
  #flushScheduled = false;
  /** Store commands already added to the store's sum (shared mode). */
  #commandsFlushed = 0;

  /** Before this time (Date.now()), quiet deltas wait for the next flush rather than cause one. */
  #quietFlushAt = 0;

  readonly #count = (key: string, by: number) => {
    if (!this.#shared) return;
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + by);
    // Worker polls are counted too, but an idle fleet must not pay a store command every 20 s for them: they ride
    // along with the next flush, or cause one at most every QUIET_FLUSH_MS (no long timer: Workers would cut it).
    if (!QUIET_SERIES.some((prefix) => key.startsWith(prefix)) || Date.now() >= this.#quietFlushAt) {
      this.#scheduleFlush();
    }
  };

  readonly requests = new Counter("auxot_requests_total", "HTTP requests by API and status", this.#count);
  readonly jobs = new Counter(
    "auxot_jobs_total",
    "Jobs by outcome (queued, completed, failed, cancelled, timed_out, queue_timeout, requeued, continued)",
    this.#count,
  );
  readonly authFailures = new Counter("auxot_auth_failures_total", "Rejected authentications by reason", this.#count);
  readonly argon2 = new Counter(
    "auxot_auth_argon2_total",
    "Argon2id key verifications run (only until a role's one key has been verified)",
    this.#count,
  );
  readonly tokens = new Counter("auxot_tokens_total", "Tokens by kind (prompt, completion, cached)", this.#count);
  readonly toolCalls = new Counter("auxot_tool_calls_total", "Server-side tool calls by tool and outcome", this.#count);
  readonly ttft = new Histogram(
    "auxot_time_to_first_token_seconds",
    "Time from enqueue to the first output token (this instance)",
    SECONDS,
  );
  readonly queueWait = new Histogram(
    "auxot_queue_wait_seconds",
    "Time from enqueue to a worker's first event (this instance)",
    SECONDS,
  );
  readonly outputSpeed = new Histogram(
    "auxot_output_tokens_per_second",
    "Generation speed of completed jobs as callers saw it (this instance)",
    TOKENS_PER_SECOND,
  );
  /** This instance's recent jobs (no prompt or output text). */
  readonly jobLog = new JobLog();

  get counters(): Counter[] {
    return [this.requests, this.jobs, this.authFailures, this.argon2, this.tokens, this.toolCalls];
  }
  get histograms(): Histogram[] {
    return [this.ttft, this.queueWait, this.outputSpeed];
  }
  get shared(): boolean {
    return this.#shared;
  }

  /** Connects the store: its command count is reported, and when shared, counters are summed in it. */
  attach(store: JobStore, options: ShareOptions): void {
    this.#store = store;
    this.#shared = options.shared ?? store.kind !== "embedded";
    this.#background = options.background;
    this.#flushIntervalMs = options.flushIntervalMs ?? this.#flushIntervalMs;
    this.#commandsFlushed = store.commandCount;
  }

  jobQueued(): void {
    this.jobs.inc({ outcome: "queued" });
  }
  jobCancelled(reason: string): void {
    this.jobs.inc({ outcome: reason === "caller_left" ? "cancelled" : reason === "timeout" ? "timed_out" : reason });
  }
  /**
   * Events a worker posted for a job: the tokens it really evaluated and generated (a continuation's prompt
   * included) and how its job ended. Callers' visible usage is kept apart (src/dispatch/answer-so-far.ts).
   */
  workerPosted(events: readonly JobEvent[]): void {
    for (const event of events) {
      if (event.type === "usage") {
        this.tokens.inc({ kind: "prompt" }, event.usage.promptTokens);
        this.tokens.inc({ kind: "completion" }, event.usage.completionTokens);
        this.tokens.inc({ kind: "cached" }, event.usage.cachedTokens);
      }
      if (event.type === "done") this.jobs.inc({ outcome: "completed" });
      if (event.type === "error") this.jobs.inc({ outcome: "failed" });
    }
  }
  /** An answer resumed on another worker after its worker was lost; the lost job's generated tokens still count. */
  jobContinued(lostCompletionTokens: number): void {
    this.jobs.inc({ outcome: "continued" });
    this.tokens.inc({ kind: "completion" }, lostCompletionTokens);
  }
  /** A server-side tool call ended: "ok", "error" (the tool failed) or what failed around it (queue_timeout...). */
  toolCalled(tool: string, outcome: string): void {
    this.toolCalls.inc({ tool, outcome });
  }
  /** A sweep's result: lost leases re-queued or failed, deadlines passed. */
  reaped(result: ReapResult): void {
    this.jobs.inc({ outcome: "requeued" }, result.requeued);
    this.jobs.inc({ outcome: "failed" }, result.failed);
    this.jobs.inc({ outcome: "cancelled" }, result.cancelled);
    this.jobs.inc({ outcome: "timed_out" }, result.timedOut);
  }

  /** Starts following a job its caller enqueued at `queuedAt` (histograms and the recent-jobs log). */
  trackJob(id: string, queuedAt: number): JobTiming {
    return new JobTiming(this.jobLog.open(id, queuedAt), {
      queueWait: (s) => this.queueWait.observe(s),
      firstToken: (s) => this.ttft.observe(s),
      outputSpeed: (tps) => this.outputSpeed.observe(tps),
    });
  }

  /**
   * Adds this instance's counter deltas to the store in one call (shared mode; no-op otherwise). Each call sends
   * the deltas counted so far itself: callers never share an in-flight flush, since on Workers a request must not
   * wait on a promise another request settles.
   */
  flush(): Promise<void> {
    if (!this.#shared || !this.#store) return Promise.resolve();
    return this.#flushNow();
  }

  /**
   * Counter totals by series key: the store's fleet-wide sums when shared (after flushing this instance's deltas:
   * at most two store commands), this instance's counts otherwise.
   */
  async counterTotals(): Promise<Record<string, number>> {
    if (this.#shared && this.#store) {
      await this.flush().catch(() => {});
      const totals = await this.#store.readCounters();
      // Deltas not yet in the store (a failed flush) still count.
      for (const [key, delta] of this.#pending) totals[key] = (totals[key] ?? 0) + delta;
      return totals;
    }
    const totals: Record<string, number> = {};
    for (const c of this.counters) for (const [key, value] of c.values) totals[key] = value;
    if (this.#store) totals[seriesKey(STORE_COMMANDS, { store: this.#store.kind })] = this.#store.commandCount;
    return totals;
  }

  /** Prometheus text exposition of this instance's counters and histograms plus scrape-time `gauges`. */
  render(gauges: Gauge[] = []): string {
    const totals: Record<string, number> = {};
    for (const c of this.counters) for (const [key, value] of c.values) totals[key] = value;
    return this.renderWith(totals, gauges);
  }

  /** Prometheus text exposition of counter `totals` (from `counterTotals`), local histograms and `gauges`. */
  renderWith(totals: Record<string, number>, gauges: Gauge[] = []): string {
    const out: string[] = [];
    const byName = new Map<string, string[]>();
    for (const [key, value] of Object.entries(totals)) {
      const series = parseSeriesKey(key);
      if (!series || !Number.isFinite(value)) continue;
      const lines = byName.get(series.name) ?? [];
      lines.push(`${key} ${value}`);
      byName.set(series.name, lines);
    }
    const helps = new Map<string, string>([
      ...this.counters.map((c) => [c.name, c.help] as [string, string]),
      [STORE_COMMANDS, "Store commands issued (Redis commands for Upstash; operations for the embedded store)"],
    ]);
    for (const name of new Set([...helps.keys(), ...byName.keys()])) {
      out.push(`# HELP ${name} ${helps.get(name) ?? "Counter"}`, `# TYPE ${name} counter`, ...(byName.get(name) ?? []));
    }
    for (const h of this.histograms) {
      out.push(`# HELP ${h.name} ${h.help}`, `# TYPE ${h.name} histogram`);
      h.buckets.forEach((b, i) => out.push(`${h.name}_bucket{le="${b}"} ${h.counts[i]}`));
      out.push(`${h.name}_bucket{le="+Inf"} ${h.count}`, `${h.name}_sum ${h.sum}`, `${h.name}_count ${h.count}`);
    }
    for (const g of gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const v of g.values) out.push(`${seriesKey(g.name, v.labels)} ${v.value}`);
    }
    return out.join("\n") + "\n";
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // A delayed flush handed to `background` survives the response on Workers (waitUntil) and batches everything
    // counted meanwhile into one store command.
    this.#background(
      new Promise((resolve) => setTimeout(resolve, this.#flushIntervalMs))
        .then(() => {
          this.#flushScheduled = false;
          return this.flush();
        })
        .catch(() => {}),
    );
  }

  async #flushNow(): Promise<void> {
    const store = this.#store!;
    const deltas = Object.fromEntries(this.#pending);
    this.#pending.clear();
    const commands = store.commandCount;
    const commandsDelta = commands - this.#commandsFlushed;
    // The flush's own command is counted by the next one.
    if (commandsDelta > 0) deltas[seriesKey(STORE_COMMANDS, { store: store.kind })] = commandsDelta;
    if (Object.keys(deltas).length === 0) return;
    this.#commandsFlushed = commands;
    this.#quietFlushAt = Date.now() + QUIET_FLUSH_MS;
    try {
      await store.addCounters(deltas);
    } catch (err) {
      // Keep the counts for the next flush rather than lose them.
      this.#commandsFlushed -= commandsDelta;
      for (const [key, delta] of Object.entries(deltas)) {
        if (!key.startsWith(STORE_COMMANDS)) this.#pending.set(key, (this.#pending.get(key) ?? 0) + delta);
      }
      throw err;
    }
  }
}
