/**
 * One caller's answer as a run of jobs: the first job, and — when its worker is lost mid-answer — continuation
 * jobs that resume it on another worker, so the caller's stream simply goes on.
 *
 * Deadlines are computed once, when the request arrives: AUXOT_JOB_TIMEOUT bounds the whole answer whatever the
 * number of jobs; AUXOT_QUEUE_TIMEOUT bounds each wait for a worker (capped by the job deadline).
 *
 * A lost worker is told from a slow one by what it posts, never by how long its work takes. A worker posts at least
 * once a second while it runs a job (tokens, or a `progress` event — also during a long prompt evaluation, which
 * the engine reports as it goes), and it loads its model before it asks for jobs, so a model load never happens
 * under a claimed job. A job whose worker has posted progress (it speaks this rule) and then falls silent for
 * AUXOT_WORKER_SILENCE is lost: its job is cancelled (a worker that was only frozen learns it on its next post) and a
 * continuation job carries the original request plus the output so far (answer-so-far.ts) to the next worker. A
 * worker that never posted progress (an older one) keeps the lease rule: the store fails its job after
 * AUXOT_LEASE_TIMEOUT, and that `worker_lost` error is continued the same way.
 *
 * Not continued, failed at once with an explicit error: an answer whose tool call had begun (partial arguments
 * cannot be resumed: the next worker would have to re-enter a half-written call in the model's own format), an
 * answer continued AUXOT_MAX_CONTINUATIONS times already, and a CLI-mode answer (a coding CLI cannot resume one). A
 * continuation no worker takes before its queue deadline gets the queue-timeout error, as any job; one a worker
 * cannot resume (an external engine, another policy) gets its "continuation_unsupported" error.
 */
import { ApiError } from "../http/errors.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { JobEvent } from "../protocol/events.ts";
import type { ChatJob } from "../protocol/worker-protocol.ts";
import { type JobStore, type NewJob, type ReadResult, StoreError } from "../store/store.ts";
import { withModelNamed } from "../policy/availability.ts";
import { routeChatJob } from "../policy/dispatch.ts";
import { AnswerSoFar } from "./answer-so-far.ts";
import type { RouterContext } from "./context.ts";
import type { JobTiming } from "../ops/job-log.ts";

/** Longest single wait on the store; a stream sends a keep-alive after each empty one. */
export const READ_WAIT_MS = 15_000;
/** How long a caller's reads retry through a store outage before the request fails. */
const STORE_OUTAGE_GRACE_MS = 10_000;
/** Errors the store or a worker append when a job's worker went away after output: the answer can be resumed. */
const LOST_WORKER_CODES = new Set(["worker_lost", "worker_shutdown", "worker_exiting"]);

export type CallerCancelReason = "caller_left" | "timeout" | "queue_timeout";

/**
 * A caller's view of its answer as a sequence of events. One `JobRun` is the usual source; the server-side tool
 * loop (src/tools/loop.ts) chains several behind the same interface.
 */
export interface EventSource {
  readonly id: string;
  readonly finished: boolean;
  /** The next events (none after a keep-alive interval when `allowEmpty`), enforcing the deadlines. */
  next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]>;
  cancel(reason: CallerCancelReason): Promise<void>;
}

/**
 * Where a run's jobs go and what they carry. A chat answer goes to its model's lane (src/policy/route.ts) and may be
 * continued; other job kinds (embeddings) are only queued again when their worker is lost.
 */
export interface JobTarget {
  lane: string;
  payload(jobId: string, continuation: ChatJob["continuation"]): NewJob["payload"];
  /** The KV-cache affinity key of the first job (a continuation's cache sat on the lost worker). */
  conversationKey?: string;
  /** An answer lost after output may be continued (chat generation). */
  resumable: boolean;
}

/** The target of a chat request's jobs: its model's lane, the request itself, continuations allowed. */
export function chatTarget(
  request: ChatRequest,
  mode: "generate" | "count_tokens",
  lane: string,
  model?: string,
  streamed = true,
): JobTarget {
  return {
    lane,
    payload: (jobId, continuation) => ({
      id: jobId,
      kind: "chat",
      request,
      mode,
      ...(model ? { model } : {}),
      ...(streamed ? {} : { stream: false }),
      ...(continuation ? { continuation } : {}),
    }),
    conversationKey: request.conversationKey,
    resumable: mode === "generate",
  };
}

/** Enqueues the first job of an answer and returns its run. Throws a 503 ApiError when the queue is full. */
export async function startJob(
  ctx: RouterContext,
  request: ChatRequest,
  mode: "generate" | "count_tokens",
  id: string,
  now: number,
  streamed = true,
  signal?: AbortSignal,
): Promise<JobRun> {
  // The request names a model of the policy (or an alias): its lane, and a 503 at once when no worker serves it.
  const route = await routeChatJob(ctx, request);
  const run = new JobRun(ctx, id, chatTarget(route.request, mode, route.lane, route.model.name, streamed), mode, now);
  await run.enqueue(id, undefined, now, signal);
  return withModelNamed(run, route.model.name);
}

/** One caller's answer: reads its jobs' events in order, enforces the deadlines, resumes after a lost worker. */
export class JobRun implements EventSource {
  finished = false;
  /** The job now answering (the caller's id for the first job, a fresh id for each continuation). */
  #jobId: string;
  #cursor = "";
  #queued = true;
  #cancelled = false;
  readonly #deadlineAt: number;
  #queueDeadlineAt: number;
  /** The current job's worker posts progress, so its silence means it is gone. */
  #heartbeating = false;
  /** The current job carries a continuation: its worker must say it resumed (`start.continued`). */
  #resuming = false;
  #startSent = false;
  #lastHeardAt: number;
  #lastReturnedAt: number;
  readonly #answer = new AnswerSoFar();
  readonly #store: JobStore;
  /** The caller's connection, once known (startJob): what the store opens for this run's reads ends with it. */
  #signal?: AbortSignal;
  readonly #timing: JobTiming;

  constructor(
    readonly ctx: RouterContext,
    readonly id: string,
    readonly target: JobTarget,
    readonly mode: "generate" | "count_tokens",
    now: number,
  ) {
    this.#store = ctx.store;
    this.#jobId = id;
    this.#timing = ctx.metrics.trackJob(id, now);
    this.#deadlineAt = now + ctx.config.jobTimeoutMs;
    this.#queueDeadlineAt = now + ctx.config.queueTimeoutMs;
    this.#lastHeardAt = now;
    this.#lastReturnedAt = performance.now();
  }

  /** Continuations so far (for the tool loop's and tests' logs). */
  get continuations(): number {
    return this.#answer.continuations;
  }

  /**
   * Puts a job of this answer in the queue. Throws a 503 ApiError when the queue is full. `signal` is the caller's
   * connection (kept for continuations): the store may open something for this run's reads before the job exists.
   */
  async enqueue(
    jobId: string,
    continuation: ChatJob["continuation"],
    now: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const queueDeadlineAt = Math.min(this.#deadlineAt, now + this.ctx.config.queueTimeoutMs);
    if (signal) this.#signal = signal;
    try {
      await this.#store.enqueue(
        {
          id: jobId,
          lane: this.target.lane,
          payload: this.target.payload(jobId, continuation),
          deadlineAt: this.#deadlineAt,
          queueDeadlineAt,
          // A continuation's conversation cache sat on the lost worker: no affinity to wait for.
          ...(continuation || !this.target.conversationKey ? {} : { conversationKey: this.target.conversationKey }),
        },
        this,
        this.#signal,
      );
    } catch (err) {
      if (err instanceof StoreError && err.code === "queue_full") {
        throw new ApiError("overloaded", "The queue is full; retry shortly.", { retryAfterSeconds: 5 });
      }
      throw err;
    }
    this.ctx.metrics.jobQueued();
    this.#jobId = jobId;
    this.#queueDeadlineAt = queueDeadlineAt;
    this.#cursor = "";
    this.#queued = true;
    this.#heartbeating = false;
    this.#resuming = continuation !== undefined;
    this.#lastHeardAt = now;
  }

  /**
   * The next events the caller may see (possibly none after `READ_WAIT_MS` when `allowEmpty`); cancels the job when
   * a deadline passes so that the timeout reaches the caller as an error event, and resumes a lost worker's job.
   */
  async next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]> {
    for (;;) {
      this.ctx.reapSoon();
      const now = this.ctx.now();
      // Until a worker takes the job, the queue deadline is the nearer one.
      const deadline = this.#queued ? Math.min(this.#deadlineAt, this.#queueDeadlineAt) : this.#deadlineAt;
      let wait = Math.min(READ_WAIT_MS, deadline - now);
      if (this.#heartbeating) wait = Math.min(wait, this.#lastHeardAt + this.ctx.config.workerSilenceMs - now);
      const read = await this.#read(Math.max(0, wait), signal);
      this.#cursor = read.cursor;
      this.#queued = read.state === "queued";
      const ended = read.state !== "queued" && read.state !== "running";
      const { events, continued } = await this.#visible(read, ended);
      // A job back in the queue (its worker handed it back before output) waits for a new worker's first post.
      if (this.#queued) this.#heartbeating = false;
      if (ended && !continued) this.finished = true;
      this.#timing.saw(events, this.ctx.now());
      if (events.length > 0 || this.finished) return this.#returning(events);
      if (continued) continue;
      if (signal.aborted) throw new ApiError("api_error", "The caller disconnected.");
      const after = this.ctx.now();
      if (after >= this.#deadlineAt) await this.cancel("timeout");
      else if (this.#queued && after >= this.#queueDeadlineAt) await this.cancel("queue_timeout");
      else if (this.#heartbeating && after - this.#lastHeardAt >= this.ctx.config.workerSilenceMs) {
        const failure = await this.#workerLost(`silent for ${after - this.#lastHeardAt} ms`);
        if (failure) return this.#returning([failure]);
      } else if (allowEmpty && performance.now() - this.#lastReturnedAt >= READ_WAIT_MS) return this.#returning([]);
    }
  }

  #returning(events: JobEvent[]): JobEvent[] {
    this.#lastReturnedAt = performance.now();
    return events;
  }

  /**
   * The caller's events of one read: progress events only keep the job alive; a continuation's `start` and the
   * usage are rewritten so the caller sees one answer. `continued` when the read showed the worker lost and a
   * continuation now answers (its events come with the next reads).
   */
  async #visible(read: ReadResult, ended: boolean): Promise<{ events: JobEvent[]; continued: boolean }> {
    const answer = this.#answer;
    const visible: JobEvent[] = [];
    if (read.events.length > 0) this.#lastHeardAt = this.ctx.now();
    for (const event of read.events) {
      switch (event.type) {
        case "progress":
          this.#heartbeating = true;
          answer.progress(event);
          continue;
        case "start":
          answer.record(event);
          if (this.#resuming && !event.continued) {
            // A worker that ignored the continuation would answer from the start: the caller would see it twice.
            const failure = await this.#fail("the worker that took over this answer cannot resume it (upgrade it)");
            return { events: [failure], continued: false };
          }
          if (this.#startSent) continue; // the caller had its start already
          this.#startSent = true;
          break;
        case "usage":
          visible.push({ type: "usage", usage: answer.callerUsage(event.usage) });
          continue;
        case "error":
          if (ended && event.code && LOST_WORKER_CODES.has(event.code) && this.mode === "generate") {
            const failure = await this.#workerLost(event.code);
            if (failure) visible.push(failure);
            return { events: visible, continued: failure === undefined };
          }
          break;
        default:
          answer.record(event);
      }
      visible.push(event);
    }
    return { events: visible, continued: false };
  }

  /**
   * The current job's worker is gone. Cancels its job and queues a continuation; or, where the answer cannot be
   * resumed, returns the error event that ends it.
   */
  async #workerLost(why: string): Promise<JobEvent | undefined> {
    const answer = this.#answer;
    const lost = this.#jobId;
    if (answer.toolCallStarted) {
      return await this.#fail(
        "the worker serving this request was lost while it was writing a tool call; partial tool-call arguments " +
          "cannot be resumed, so the answer is incomplete",
      );
    }
    if (answer.hasOutput && this.ctx.config.policy.engine === "cli") {
      // A coding CLI cannot be handed an answer begun elsewhere: fail now rather than after a refusal.
      return await this.#fail(
        "the CLI worker serving this request was lost after output had started; the answer is incomplete",
      );
    }
    if (answer.continuations >= this.ctx.config.maxContinuations) {
      return await this.#fail(
        `the worker serving this request was lost and the answer was already continued ${answer.continuations} ` +
          "time(s) (AUXOT_MAX_CONTINUATIONS); the answer is incomplete",
      );
    }
    // The store has no "worker lost" cancel reason; the error it appends to the old job is never read.
    await this.#store.cancel(lost, "timeout").catch((err) =>
      this.ctx.log.warn("cancel failed", { job: lost, error: err })
    );
    const lostTokens = answer.currentJobTokens;
    const continuation = answer.continuation(this.ctx.config.policy.version);
    const next = crypto.randomUUID().replaceAll("-", "");
    try {
      // Nothing sent yet: a plain retry, which any worker (a CLI worker too) can serve.
      const resume = this.target.resumable && answer.hasOutput;
      await this.enqueue(next, resume ? continuation : undefined, this.ctx.now());
    } catch (err) {
      this.ctx.log.warn("could not queue a continuation", { job: this.id, error: err });
      return await this.#fail("the worker serving this request was lost and no continuation could be queued");
    }
    this.ctx.metrics.jobContinued(lostTokens);
    this.ctx.log.info("job continued", {
      job: this.id,
      lost,
      continuation: next,
      count: continuation.count,
      why,
      textChars: continuation.text.length,
      reasoningChars: continuation.reasoning.length,
      tokens: continuation.tokens?.length,
    });
    return undefined;
  }

  /** Ends the answer with a `worker_lost` error (the current job is cancelled so a frozen worker stops). */
  async #fail(message: string): Promise<JobEvent> {
    const job = this.#jobId;
    await this.#store.cancel(job, "timeout").catch((err) => this.ctx.log.warn("cancel failed", { job, error: err }));
    this.finished = true;
    this.ctx.metrics.jobs.inc({ outcome: "failed" });
    const event: JobEvent = { type: "error", message, retryable: false, code: "worker_lost" };
    this.#timing.saw([event], this.ctx.now());
    return event;
  }

  /**
   * One read of the job's events. A store outage of a few seconds (Redis restarting, a network blip) is ridden out
   * with short retries — the job is intact in the store — before the caller is told the router lost track of it.
   */
  async #read(wait: number, signal: AbortSignal): Promise<ReadResult> {
    const giveUpAt = performance.now() + STORE_OUTAGE_GRACE_MS;
    for (let attempt = 1;; attempt++) {
      try {
        // `this` names the request reading: the store may keep its subscription to the job's channel for it.
        const read = await this.#store.readEvents(this.#jobId, this.#cursor, wait, signal, this);
        // The worker's posts failed during the outage too: its silence window starts again now.
        if (attempt > 1) this.#lastHeardAt = this.ctx.now();
        return read;
      } catch (err) {
        if (!(err instanceof StoreError) || err.code !== "unavailable" || performance.now() > giveUpAt) throw err;
        if (signal.aborted) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async cancel(reason: CallerCancelReason): Promise<void> {
    if (this.#cancelled || this.finished) return;
    this.#cancelled = true;
    await this.#store.cancel(this.#jobId, reason);
    this.ctx.metrics.jobCancelled(reason);
    this.#timing.cancelled(reason, this.ctx.now());
  }
}
