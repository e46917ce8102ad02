/**
 * A short in-memory log of this instance's recent jobs, for the status API and the dashboard: timings, token
 * counts, outcome and error code — never prompt or output text. `JobTiming` follows one job as its caller reads
 * the job's events (src/dispatch/chat.ts) and feeds both this log and the latency histograms.
 */
import type { JobEvent } from "../protocol/events.ts";

export type JobRecordState = "queued" | "running" | "done" | "failed" | "cancelled" | "timed_out" | "queue_timeout";

export interface JobRecord {
  id: string;
  /** When the router enqueued the job (ms since the epoch, router clock). */
  queuedAt: number;
  state: JobRecordState;
  model?: string;
  /** Enqueue → the worker's first event. */
  queueMs?: number;
  /** Enqueue → first output (text, reasoning or tool call). */
  ttftMs?: number;
  /** Enqueue → last event (set once the job ended). */
  durationMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  /** Completion tokens over the time from first output to the end. */
  tokensPerSecond?: number;
  finishReason?: string;
  /** Error code and a truncated message (the router's or the worker's), when the job did not complete. */
  error?: { code: string; message: string };
}

/** What a finished or progressing job reports to the histograms (seconds, tokens/s). */
export interface TimingSink {
  queueWait(seconds: number): void;
  firstToken(seconds: number): void;
  outputSpeed(tokensPerSecond: number): void;
}

const MAX_RECORDS = 50;
const MAX_ERROR_CHARS = 160;
/** Workers post events in batches: shorter generations arrive in one burst and cannot be timed. */
const MIN_TIMED_SECONDS = 0.05;

export class JobLog {
  readonly #records: JobRecord[] = [];

  /** Starts a record (state "queued") and returns it; the oldest record goes when the log is full. */
  open(id: string, queuedAt: number): JobRecord {
    const record: JobRecord = { id, queuedAt, state: "queued" };
    this.#records.push(record);
    if (this.#records.length > MAX_RECORDS) this.#records.shift();
    return record;
  }

  /** Newest first, copied (callers may serialise them while jobs progress). */
  recent(limit = MAX_RECORDS): JobRecord[] {
    return this.#records.slice(-limit).reverse().map((r) => ({ ...r, ...(r.error ? { error: { ...r.error } } : {}) }));
  }
}

const OUTPUT_TYPES = new Set<JobEvent["type"]>(["text", "reasoning", "tool_call", "tool_args"]);

/** Follows one job through the events its caller reads. Every method is cheap and never throws. */
export class JobTiming {
  #firstOutputAt?: number;

  constructor(readonly record: JobRecord, private readonly sink: TimingSink) {}

  /** Events the caller just read, at router time `now`. */
  saw(events: JobEvent[], now: number): void {
    if (events.length === 0 || this.#ended()) return;
    const r = this.record;
    if (r.queueMs === undefined) {
      r.queueMs = Math.max(0, now - r.queuedAt);
      r.state = "running";
      this.sink.queueWait(r.queueMs / 1000);
    }
    for (const event of events) {
      if (this.#firstOutputAt === undefined && OUTPUT_TYPES.has(event.type)) {
        this.#firstOutputAt = now;
        r.ttftMs = Math.max(0, now - r.queuedAt);
        this.sink.firstToken(r.ttftMs / 1000);
      }
      if (event.type === "start") r.model = event.model;
      if (event.type === "usage") {
        r.promptTokens = event.usage.promptTokens;
        r.completionTokens = event.usage.completionTokens;
        r.cachedTokens = event.usage.cachedTokens;
      }
      if (event.type === "done") {
        r.finishReason = event.finishReason;
        this.#end("done", now);
      }
      if (event.type === "error") {
        r.error = { code: event.code ?? "worker_error", message: event.message.slice(0, MAX_ERROR_CHARS) };
        this.#end("failed", now);
      }
    }
  }

  /** The caller cancelled the job (left, or a deadline passed). */
  cancelled(reason: string, now: number): void {
    if (this.#ended()) return;
    const state: JobRecordState = reason === "timeout"
      ? "timed_out"
      : reason === "queue_timeout"
      ? "queue_timeout"
      : "cancelled";
    this.record.error = { code: reason, message: "" };
    this.#end(state, now);
  }

  #ended(): boolean {
    const s = this.record.state;
    return s !== "queued" && s !== "running";
  }

  #end(state: JobRecordState, now: number): void {
    const r = this.record;
    r.state = state;
    r.durationMs = Math.max(0, now - r.queuedAt);
    if (state === "done" && this.#firstOutputAt !== undefined && r.completionTokens) {
      // Generation speed as the caller sees it: tokens after the first one, over the time they took.
      const seconds = (now - this.#firstOutputAt) / 1000;
      if (seconds >= MIN_TIMED_SECONDS && r.completionTokens > 1) {
        r.tokensPerSecond = Math.round(((r.completionTokens - 1) / seconds) * 10) / 10;
        this.sink.outputSpeed(r.tokensPerSecond);
      }
    }
  }
}
