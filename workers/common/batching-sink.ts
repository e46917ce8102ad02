/**
 * How a worker posts a job's events (worker-loop.ts runs one BatchingSink per job): in batches, in order, retried
 * idempotently, with the progress posts the router's silence rule relies on.
 */
import { isOutput, isTerminal, type JobEvent } from "../../src/protocol/events.ts";
import { EventsResponse } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "./engine.ts";
import { backoff, FatalWorkerError, sleep } from "./worker-errors.ts";

/** What a sink needs from its worker loop. */
export interface SinkHost {
  readonly leaseMs: number;
  readonly flushMs: number;
  readonly maxFlushMs: number;
  abortReasonOf(jobId: string): string | undefined;
  /** A job's sink joins (or leaves) the loop's one progress ticker, which calls `beat()`. */
  watchProgress(sink: BatchingSink, on: boolean): void;
  postEvents(jobId: string, leaseToken: string, seq: number, events: JobEvent[]): Promise<unknown>;
}

/** Protocol rule: while a job runs, its worker posts at least this often (the router's silence rule relies on it). */
const PROGRESS_MS = 1_000;
export const PROGRESS_TICK_MS = 250;

/**
 * Collects a job's events and posts them in batches: the first output (for a streaming caller) and a terminal event
 * go out at once; any other event starts a `flushMs` timer. When nothing was posted for most of a second — prompt evaluation, a slow
 * token — the engine's latest `progress` (or a bare one) goes out, so the router can tell a slow worker from a
 * lost one. Posts are sequential, so order and `seq` hold; a retried post is idempotent.
 */
export class BatchingSink implements EventSink {
  #buffer: JobEvent[] = [];
  #seq = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #lastPostAt = performance.now();
  /** The engine's latest progress report: sent only when nothing else was posted lately. */
  #progress?: Extract<JobEvent, { type: "progress" }>;
  #chain: Promise<void> = Promise.resolve();
  #batches = 0;
  #closed = false;
  terminated = false;
  hadOutput = false;

  constructor(
    readonly loop: SinkHost,
    readonly jobId: string,
    readonly leaseToken: string,
    readonly controller: AbortController,
    readonly firstOutputAtOnce = true,
  ) {
    loop.watchProgress(this, true);
    // The first post says this worker reports progress: from then on the router reads its silence as its loss.
    this.#buffer.push({ type: "progress", phase: "prefill" });
    this.#timer = setTimeout(() => this.#flush(), this.#holdMs());
  }

  get abortReason(): string | undefined {
    return this.loop.abortReasonOf(this.jobId);
  }

  emit(event: JobEvent): void {
    if (this.terminated || this.#closed) return;
    if (event.type === "progress") {
      this.#progress = event;
      return;
    }
    if (this.controller.signal.aborted && !(event.type === "error" && this.abortReason)) return;
    this.#buffer.push(event);
    const firstOutput = isOutput(event) && !this.hadOutput;
    if (isOutput(event)) this.hadOutput = true;
    if (isTerminal(event)) {
      this.terminated = true;
      this.#flush();
    } else if (firstOutput && this.firstOutputAtOnce) {
      // The first token goes out at once (time to first token); later ones ride in batches.
      this.#flush();
    } else {
      this.#timer ??= setTimeout(() => this.#flush(), this.#holdMs());
    }
  }

  /** flushMs, doubling with each batch posted up to maxFlushMs. */
  #holdMs(): number {
    return Math.min(this.loop.maxFlushMs, this.loop.flushMs * 2 ** Math.min(this.#batches, 10));
  }

  /** Posts progress when nothing went out for most of PROGRESS_MS (posting also keeps the lease). */
  beat(): void {
    if (this.terminated || this.#closed || this.controller.signal.aborted) return;
    // Events waiting for their flush timer (due about maxFlushMs after the last post) will keep the rule themselves:
    // only once a whole PROGRESS_MS has passed does the beat post them. Posting them at the usual 750 ms would cut
    // every batch short — a batch (a billed store command, and a read for the caller) every ~750 ms, not every 1 s.
    const waiting = this.#timer !== undefined && this.#buffer.length > 0;
    if (performance.now() - this.#lastPostAt < (waiting ? PROGRESS_MS : PROGRESS_MS - PROGRESS_TICK_MS)) return;
    this.#buffer.push(this.#progress ?? { type: "progress", phase: this.hadOutput ? "generate" : "prefill" });
    this.#flush();
  }

  #flush(): void {
    this.#lastPostAt = performance.now();
    if (this.#buffer.length > 0) this.#batches++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const events = this.#buffer;
    this.#buffer = [];
    const seq = this.#seq;
    this.#seq += events.length;
    this.#chain = this.#chain.then(() => this.#send(seq, events));
  }

  async #send(seq: number, events: JobEvent[]): Promise<void> {
    const deadline = Date.now() + this.loop.leaseMs;
    for (let attempt = 1;; attempt++) {
      try {
        const raw = await this.loop.postEvents(this.jobId, this.leaseToken, seq, events);
        const ok = EventsResponse.safeParse(raw);
        if (!ok.success || ok.data.cancelled) this.controller.abort(); // 409 (lease lost) or cancelled
        return;
      } catch (err) {
        if (err instanceof FatalWorkerError || Date.now() > deadline) {
          // The lease is gone by now: stop working for nobody.
          this.controller.abort();
          return;
        }
        await sleep(backoff(attempt, 200, 5_000));
      }
    }
  }

  async close(): Promise<void> {
    this.loop.watchProgress(this, false);
    if (this.#buffer.length > 0) this.#flush();
    this.#closed = true;
    await this.#chain;
  }
}
