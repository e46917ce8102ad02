/**
 * The engine interface every worker kind implements: the GPU worker (node-llama-cpp or an external
 * OpenAI-compatible server), the CLI worker (Claude Code) and the tools worker. The shared poll loop
 * (workers/common/worker-loop.ts) owns the protocol; an engine only turns one job into events.
 */
import type { JobEvent } from "../../src/protocol/events.ts";
import type { LoadedModel, Policy, WorkerInfo, WorkerJob } from "../../src/protocol/worker-protocol.ts";

export interface EventSink {
  /**
   * Queues an event for the router; the loop batches and posts them (every few tens of ms). A `progress` event is
   * kept as the job's latest progress and posted only when nothing else was posted for a second (cheap to emit).
   */
  emit(event: JobEvent): void;
}

export interface Engine {
  readonly kind: WorkerInfo["kind"];
  /** Resumes a chat job's `continuation` (worker-protocol.ts); the loop refuses continuation jobs otherwise. */
  readonly resumesContinuations?: boolean;
  /** Slots this engine can run at once with what is loaded now (0 until loaded). */
  slots(): number;
  /** Brings the engine in line with a policy (first poll, or when policy.version changes). Idempotent. */
  applyPolicy(policy: Policy): Promise<LoadedModel | undefined>;
  /**
   * Runs one job to the end, emitting its events. Must emit exactly one terminal event (`done` or `error`),
   * or throw (the loop turns a throw into an `error` event). Stops within a few tokens when `signal` aborts.
   */
  run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void>;
  /** Extra fields for the poll's WorkerInfo (tools offered, hardware, cached conversations, tokens/s). */
  describe(): Partial<WorkerInfo>;
  dispose(): Promise<void>;
}
