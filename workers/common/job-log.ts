/**
 * One log line per job ("job done": tokens in and out, seconds, tokens/s), so a person watching a worker sees each
 * job finish with its speed. It wraps the engine rather than the poll loop: the loop stays about the protocol, and
 * the events the engine emits already carry everything the line needs (usage, finish reason, error).
 */
import type { JobEvent } from "../../src/protocol/events.ts";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Logger } from "../../src/log.ts";
import type { Engine, EventSink } from "./engine.ts";

export interface JobSummary {
  job: string;
  kind: WorkerJob["kind"];
  /** "done (stop)", "done (length)", "failed", "cancelled"… */
  outcome: string;
  promptTokens?: number;
  cachedTokens?: number;
  completionTokens?: number;
  ms: number;
  /** Output tokens per second from the first output event to the end (generation speed, not queueing). */
  tokensPerSecond?: number;
}

/** Follows one job's events and sums them up at the end. */
export class JobTally {
  #start: number;
  #firstOutput?: number;
  #usage?: { promptTokens: number; cachedTokens?: number; completionTokens: number };
  #outcome = "ended";

  constructor(readonly job: WorkerJob, readonly now: () => number = performance.now.bind(performance)) {
    this.#start = now();
  }

  observe(event: JobEvent): void {
    if (this.#firstOutput === undefined && (event.type === "text" || event.type === "reasoning")) {
      this.#firstOutput = this.now();
    }
    if (event.type === "usage") this.#usage = event.usage;
    if (event.type === "done") this.#outcome = `done (${event.finishReason})`;
    if (event.type === "error") this.#outcome = event.code === "cancelled" ? "cancelled" : `failed (${event.message})`;
  }

  summary(): JobSummary {
    const end = this.now();
    const generating = this.#firstOutput === undefined ? undefined : (end - this.#firstOutput) / 1000;
    const out = this.#usage?.completionTokens;
    return {
      job: this.job.id,
      kind: this.job.kind,
      outcome: this.#outcome,
      ...(this.#usage
        ? {
          promptTokens: this.#usage.promptTokens,
          cachedTokens: this.#usage.cachedTokens ?? 0,
          completionTokens: this.#usage.completionTokens,
        }
        : {}),
      ms: Math.round(end - this.#start),
      ...(out && generating && generating > 0 ? { tokensPerSecond: Math.round((out / generating) * 10) / 10 } : {}),
    };
  }
}

/** The same engine, logging "job done" (info) with a JobSummary when each job ends. */
export function withJobLog(engine: Engine, log: Logger): Engine {
  return {
    get kind() {
      return engine.kind;
    },
    get resumesContinuations() {
      return engine.resumesContinuations;
    },
    slots: () => engine.slots(),
    applyPolicy: (policy) => engine.applyPolicy(policy),
    describe: () => engine.describe(),
    dispose: () => engine.dispose(),
    async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
      const tally = new JobTally(job);
      const observed: EventSink = {
        emit(event) {
          tally.observe(event);
          sink.emit(event);
        },
      };
      try {
        await engine.run(job, observed, signal);
      } catch (err) {
        tally.observe({ type: "error", message: (err as Error).message ?? String(err), retryable: false });
        throw err;
      } finally {
        const { job: id, ...rest } = tally.summary();
        log.info("job done", { job: id, ...rest });
      }
    },
  };
}
