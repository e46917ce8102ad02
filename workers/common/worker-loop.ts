/**
 * The poll loop every worker kind shares: long-polls the router for jobs (at most as many as it has free slots),
 * follows the model policy, runs each job on the engine, and posts its events in small batches. It owns the
 * protocol's failure rules: retries with jittered backoff while the router is unreachable, exits on a rejected
 * key or an incompatible protocol, stops a job the router cancelled, and keeps leases alive with heartbeats.
 */
import type { JobEvent } from "../../src/protocol/events.ts";
import {
  callerStreams,
  type LoadedModel,
  type Policy,
  PollResponse,
  PROTOCOL_VERSION,
  type WorkerInfo,
  type WorkerJob,
} from "../../src/protocol/worker-protocol.ts";
import type { Logger } from "../../src/log.ts";
import type { Engine } from "./engine.ts";
import { BatchingSink, PROGRESS_TICK_MS } from "./batching-sink.ts";
import { backoff, FatalWorkerError, sleep } from "./worker-errors.ts";

export { FatalWorkerError };

export interface WorkerLoopOptions {
  routerUrl: string;
  key: string;
  engine: Engine;
  log: Logger;
  id?: string;
  name?: string;
  version?: string;
  /** How long the router may hold a poll (it caps this at ~25 s). */
  pollWaitMs?: number;
  /** Ctrl-C: how long running jobs may take to finish before they are handed back. */
  shutdownGraceMs?: number;
  fetch?: typeof fetch;
}

class RetryableHttpError extends Error {}

interface RunningJob {
  job: WorkerJob;
  controller: AbortController;
  done: Promise<void>;
}

export class WorkerLoop {
  readonly id: string;
  #policy?: Policy;
  #loaded?: LoadedModel;
  #leaseMs = 30_000;
  #flushMs = 20;
  #maxFlushMs = 20;
  #stopping = false;
  #applying?: Promise<void>;
  #applyFailures = 0;
  #running = new Map<string, RunningJob>();
  /** Sinks of running jobs, and the one interval that checks them all for a due progress post. */
  readonly #sinks = new Set<BatchingSink>();
  #progressTicker?: ReturnType<typeof setInterval>;
  #slotFreed?: () => void;
  #pollController?: AbortController;
  readonly #fetch: typeof fetch;
  readonly #base: string;

  constructor(readonly opts: WorkerLoopOptions) {
    this.id = opts.id ?? `${opts.engine.kind}-${crypto.randomUUID()}`;
    this.#fetch = opts.fetch ?? fetch;
    this.#base = opts.routerUrl.replace(/\/+$/, "");
  }

  get runningJobs(): number {
    return this.#running.size;
  }

  /** Runs until `stop()`; rejects with FatalWorkerError when the router refuses this worker. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      try {
        await this.#step();
        failures = 0;
      } catch (err) {
        if (err instanceof FatalWorkerError) {
          await this.#abortAll("worker_exiting");
          throw err;
        }
        if (this.#stopping) break;
        failures++;
        const delay = backoff(failures);
        this.opts.log.warn("cannot reach the router, retrying", {
          router: this.#base,
          error: err,
          retryInMs: delay,
          attempt: failures,
        });
        await sleep(delay);
      }
    }
    await Promise.all([...this.#running.values()].map((r) => r.done));
    await this.#applying;
  }

  /** Stops taking jobs; running jobs get `shutdownGraceMs` to finish, then are handed back (re-queued). */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#pollController?.abort();
    this.#slotFreed?.();
    await this.#leave();
    const grace = this.opts.shutdownGraceMs ?? 30_000;
    const all = Promise.all([...this.#running.values()].map((r) => r.done));
    const timedOut = await Promise.race([all.then(() => false), sleep(grace).then(() => true)]);
    if (timedOut) await this.#abortAll("worker_shutdown");
    await all;
  }

  async #step(): Promise<void> {
    const engine = this.opts.engine;
    const policy = this.#policy;
    if (policy && engine.kind !== "tools" && this.#loaded?.policyVersion !== policy.version) {
      if (this.#running.size === 0 && !this.#applying) this.#applying = this.#apply(policy);
      // Finish accepted jobs before switching models, and keep polling while a model loads (downloads take
      // minutes): the router then still lists this worker, and its leases stay alive.
      await this.#waitForSlot(this.#applying);
      await this.#poll(0);
      return;
    }
    const free = engine.slots() - this.#running.size;
    if (policy && free <= 0) {
      await this.#waitForSlot();
      await this.#poll(0);
      return;
    }
    await this.#poll(policy ? this.opts.pollWaitMs ?? 60_000 : 0);
  }

  /**
   * One last poll with no free slot and no wait: the router stops handing this worker jobs (an Upstash router may
   * have parked it to receive the next one directly, docs/store.md), and puts back any it handed over that this
   * worker had not taken. Best effort: a router out of reach forgets the worker when its TTL passes.
   */
  async #leave(): Promise<void> {
    if (!this.#policy) return; // never heard from the router: nothing to undo
    const leases = Object.fromEntries([...this.#running].map(([id, r]) => [id, r.job.leaseToken ?? ""]));
    const body = {
      protocol: PROTOCOL_VERSION,
      worker: this.#info(),
      activeJobs: Object.keys(leases),
      leases,
      waitMs: 0,
    };
    try {
      const raw = await this.#post("/worker/v1/poll", body, AbortSignal.timeout(5_000));
      const cancelled = (raw as { cancelled?: unknown } | undefined)?.cancelled;
      if (Array.isArray(cancelled)) { for (const id of cancelled) this.#running.get(String(id))?.controller.abort(); }
    } catch (err) {
      this.opts.log.debug("could not tell the router this worker is leaving", { error: err });
    }
  }

  /** Loads a policy in the background; a failure is logged and retried after a backoff, not fatal. */
  async #apply(policy: Policy): Promise<void> {
    try {
      this.opts.log.info("applying model policy", { model: policy.model.name, version: policy.version });
      this.#loaded = await this.opts.engine.applyPolicy(policy);
      this.#applyFailures = 0;
      this.opts.log.info("model policy applied", { ...this.#loaded });
    } catch (err) {
      this.#applyFailures++;
      const delay = backoff(this.#applyFailures, 5_000, 300_000);
      this.opts.log.error("could not apply the model policy; retrying", { error: err, retryInMs: delay });
      await sleep(delay);
    } finally {
      this.#applying = undefined;
    }
  }

  /** Resolves when a slot frees, `also` settles, or a heartbeat is due (a third of the lease). */
  async #waitForSlot(also?: Promise<void>): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.#leaseMs / 3);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#slotFreed = done;
      also?.then(done, done);
    });
    this.#slotFreed = undefined;
  }

  #info(): WorkerInfo {
    const engine = this.opts.engine;
    const slots = this.#stopping ? 0 : engine.slots();
    return {
      id: this.id,
      kind: engine.kind,
      ...(this.opts.name ? { name: this.opts.name } : {}),
      ...(this.opts.version ? { version: this.opts.version } : {}),
      slots,
      free: Math.max(0, slots - this.#running.size),
      ...(this.#loaded ? { loaded: this.#loaded } : {}),
      ...engine.describe(),
      postsProgress: true, // BatchingSink posts progress within a second of a job's start
    };
  }

  async #poll(waitMs: number): Promise<void> {
    this.#pollController = new AbortController();
    const leases = Object.fromEntries([...this.#running].map(([id, r]) => [id, r.job.leaseToken ?? ""]));
    const body = { protocol: PROTOCOL_VERSION, worker: this.#info(), activeJobs: Object.keys(leases), leases, waitMs };
    const raw = await this.#post("/worker/v1/poll", body, this.#pollController.signal);
    if (raw === undefined) return; // aborted by stop()
    // The policy comes with every answer and changes only with its version: validated when it is new, not per poll.
    const version = (raw as { policy?: { version?: unknown } } | null)?.policy?.version;
    const samePolicy = this.#policy !== undefined && version === this.#policy.version;
    const response = samePolicy
      ? { ...PollResponseSamePolicy.parse(raw), policy: this.#policy! }
      : PollResponse.parse(raw);
    this.#policy = response.policy;
    this.#leaseMs = response.leaseMs;
    this.#flushMs = response.flushMs;
    this.#maxFlushMs = Math.max(response.flushMs, response.maxFlushMs ?? response.flushMs);
    for (const id of response.cancelled) this.#running.get(id)?.controller.abort();
    for (const job of response.jobs) this.#start(job);
  }

  #start(job: WorkerJob): void {
    const controller = new AbortController();
    // A caller that waits for the whole answer gains nothing from a first token posted on its own.
    const firstOutputAtOnce = callerStreams(job);
    const sink = new BatchingSink(this, job.id, job.leaseToken ?? "", controller, firstOutputAtOnce);
    const log = this.opts.log.child({ job: job.id });
    log.debug("job started", { kind: job.kind, attempt: job.attempt });
    const done = (async () => {
      try {
        const refusal = this.#cannotResume(job);
        if (refusal) sink.emit({ type: "error", message: refusal, retryable: false, code: "continuation_unsupported" });
        else await this.opts.engine.run(job, sink, controller.signal);
        if (!sink.terminated && !controller.signal.aborted) {
          sink.emit({
            type: "error",
            message: "the engine ended without a result",
            retryable: false,
            code: "engine_error",
          });
        }
      } catch (err) {
        if (!controller.signal.aborted) {
          log.warn("job failed", { error: err });
          sink.emit({ type: "error", message: errorMessage(err), retryable: false, code: "engine_error" });
        }
      } finally {
        if (controller.signal.aborted && !sink.terminated && sink.abortReason) {
          // Shutdown: hand the job back; the router re-queues it if no output reached the caller.
          sink.emit({ type: "error", message: "the worker is shutting down", retryable: true, code: sink.abortReason });
        }
        await sink.close();
        this.#running.delete(job.id);
        this.#abortReasons.delete(job.id);
        this.#slotFreed?.();
        log.debug("job finished");
      }
    })();
    this.#running.set(job.id, { job, controller, done });
  }

  /** Why this worker cannot resume a continuation job (another engine, another policy); undefined if it can. */
  #cannotResume(job: WorkerJob): string | undefined {
    if (job.kind !== "chat" || !job.continuation) return undefined;
    if (!this.opts.engine.resumesContinuations) {
      return "this worker's engine cannot resume an answer another worker began";
    }
    if (job.continuation.policyVersion !== this.#loaded?.policyVersion) {
      return "this answer was started under another model policy; it cannot be resumed here";
    }
    return undefined;
  }

  /** Aborts every running job as the worker's own decision; their sinks hand them back to the router. */
  async #abortAll(reason: string): Promise<void> {
    for (const [id, r] of this.#running) {
      this.#abortReasons.set(id, reason);
      r.controller.abort();
    }
    await Promise.all([...this.#running.values()].map((r) => r.done));
  }

  /** Why a job was aborted by the worker itself (shutdown), as opposed to a cancel from the router. */
  readonly #abortReasons = new Map<string, string>();
  abortReasonOf(jobId: string): string | undefined {
    return this.#abortReasons.get(jobId);
  }

  /** A job's sink joins (or leaves) the progress check: one timer for the worker, not one per job. */
  watchProgress(sink: BatchingSink, on: boolean): void {
    if (on) this.#sinks.add(sink);
    else this.#sinks.delete(sink);
    if (this.#sinks.size > 0 && this.#progressTicker === undefined) {
      this.#progressTicker = setInterval(() => {
        for (const s of this.#sinks) s.beat();
      }, PROGRESS_TICK_MS);
    } else if (this.#sinks.size === 0 && this.#progressTicker !== undefined) {
      clearInterval(this.#progressTicker);
      this.#progressTicker = undefined;
    }
  }

  get leaseMs(): number {
    return this.#leaseMs;
  }
  get flushMs(): number {
    return this.#flushMs;
  }
  get maxFlushMs(): number {
    return this.#maxFlushMs;
  }

  /** POSTs JSON; undefined when aborted. Throws FatalWorkerError on refusals, RetryableHttpError otherwise. */
  async #post(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    let response: Response;
    try {
      response = await this.#fetch(this.#base + path, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.opts.key}` },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) return undefined;
      throw err;
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new RetryableHttpError(`router answered ${response.status} with a non-JSON body`);
    }
    if (response.ok) return parsed;
    const error = (parsed as { error?: { code?: string; message?: string }; fatal?: boolean }) ?? {};
    const message = error.error?.message ?? `HTTP ${response.status}`;
    if (error.fatal || response.status === 401 || response.status === 403 || response.status === 426) {
      throw new FatalWorkerError(
        `The router refused this worker: ${message}`,
        error.error?.code ?? String(response.status),
      );
    }
    if (response.status === 409 || response.status === 413) return parsed; // lease lost, or a job past its bounds
    throw new RetryableHttpError(`router answered ${response.status}: ${message}`);
  }

  /** Posts one batch of a job's events; retried by the sink. */
  postEvents(jobId: string, leaseToken: string, seq: number, events: JobEvent[]): Promise<unknown> {
    return this.#post(`/worker/v1/jobs/${encodeURIComponent(jobId)}/events`, {
      workerId: this.id,
      leaseToken,
      seq,
      events,
    });
  }
}

/** A poll answer whose policy has the version the worker already follows: the rest of it is validated. */
const PollResponseSamePolicy = PollResponse.omit({ policy: true });

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
