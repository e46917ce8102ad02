/**
 * In-process metrics with low-cardinality labels, rendered in Prometheus text format at /metrics. On Workers
 * (no long-lived process) the fleet figures come from the store at scrape time; these counters cover the isolate.
 */
type Labels = Record<string, string>;

class Counter {
  readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels)) ?? 0;
  }
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.counts[i]++;
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly requests = new Counter("auxot_requests_total", "HTTP requests by API and status");
  readonly jobs = new Counter("auxot_jobs_total", "Jobs by outcome");
  readonly authFailures = new Counter("auxot_auth_failures_total", "Rejected authentications by reason");
  readonly tokens = new Counter("auxot_tokens_total", "Tokens by direction (prompt, completion, cached)");
  readonly toolCalls = new Counter("auxot_tool_calls_total", "Server-side tool calls by tool and outcome");
  readonly ttft = new Histogram("auxot_time_to_first_token_seconds", "Time from request to first output", SECONDS);
  readonly queueWait = new Histogram(
    "auxot_queue_wait_seconds",
    "Time from enqueue to a worker's first event",
    SECONDS,
  );

  jobQueued(): void {
    this.jobs.inc({ outcome: "queued" });
  }
  jobCancelled(reason: string): void {
    this.jobs.inc({ outcome: reason === "caller_left" ? "cancelled" : reason === "timeout" ? "timed_out" : reason });
  }

  /** Prometheus text exposition; `gauges` are figures computed at scrape time (fleet, store). */
  render(gauges: { name: string; help: string; values: { labels?: Labels; value: number }[] }[] = []): string {
    const out: string[] = [];
    const labelText = (labels: Labels) => {
      const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`);
      return parts.length ? `{${parts.join(",")}}` : "";
    };
    for (const c of [this.requests, this.jobs, this.authFailures, this.tokens, this.toolCalls]) {
      out.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} counter`);
      for (const [key, value] of c.values) out.push(`${c.name}${labelText(JSON.parse(key))} ${value}`);
    }
    for (const h of [this.ttft, this.queueWait]) {
      out.push(`# HELP ${h.name} ${h.help}`, `# TYPE ${h.name} histogram`);
      h.buckets.forEach((b, i) => out.push(`${h.name}_bucket{le="${b}"} ${h.counts[i]}`));
      out.push(`${h.name}_bucket{le="+Inf"} ${h.count}`, `${h.name}_sum ${h.sum}`, `${h.name}_count ${h.count}`);
    }
    for (const g of gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const v of g.values) out.push(`${g.name}${labelText(v.labels ?? {})} ${v.value}`);
    }
    return out.join("\n") + "\n";
  }
}
