/**
 * The one request pipeline every chat API shares: the request becomes a job in the store's queue, the caller
 * waits for the worker's first event (so queueing failures are still proper HTTP errors), then events are relayed
 * as they arrive — as SSE or gathered into one body. A caller that leaves cancels its job; a job past its
 * deadline is cancelled and reported as an explicit error, never as a normal-looking end.
 */
import type { ChatFlavour, RenderOptions, ResponseMeta } from "../api/flavour.ts";
import type { JobTiming } from "../ops/job-log.ts";
import { ApiError } from "../http/errors.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { JobEvent } from "../protocol/events.ts";
import { isOutput } from "../protocol/events.ts";
import { type JobStore, StoreError } from "../store/store.ts";
import type { RouterContext } from "./context.ts";
import { withModelNamed } from "../policy/availability.ts";
import { routeChatJob } from "../policy/dispatch.ts";

/** Longest single wait on the store; a stream sends a keep-alive after each empty one. */
const READ_WAIT_MS = 15_000;
/** How long a caller's reads retry through a store outage before the request fails. */
const STORE_OUTAGE_GRACE_MS = 10_000;

/**
 * A caller's view of its answer as a sequence of events. One job (`JobRun`) is the usual source; the server-side
 * tool loop (src/tools/loop.ts) chains several jobs behind the same interface.
 */
export interface EventSource {
  readonly id: string;
  readonly finished: boolean;
  /** The next events (none after a keep-alive interval when `allowEmpty`), enforcing the deadlines. */
  next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]>;
  cancel(reason: "caller_left" | "timeout" | "queue_timeout"): Promise<void>;
}

/** Starts the answer for a request: enqueues its first job and returns the event source to read. */
export type SourceFactory = (ctx: RouterContext, d: ChatDispatch, id: string, now: number) => Promise<EventSource>;

export interface ChatDispatch {
  flavour: ChatFlavour;
  request: ChatRequest;
  stream: boolean;
  render: RenderOptions;
  mode?: "generate" | "count_tokens";
  /** The caller's connection: aborts when it goes away. */
  signal: AbortSignal;
  /** Where the events come from; a single job by default. */
  source?: SourceFactory;
}

/** Enqueues one chat job and returns its run. Throws a 503 ApiError when the queue is full. */
export async function startJob(
  ctx: RouterContext,
  request: ChatRequest,
  mode: "generate" | "count_tokens",
  id: string,
  now: number,
): Promise<JobRun> {
  const route = await routeChatJob(ctx, request);
  try {
    await ctx.store.enqueue({
      id,
      lane: route.lane,
      payload: { id, kind: "chat", request: route.request, mode, model: route.model.name },
      deadlineAt: now + ctx.config.jobTimeoutMs,
      queueDeadlineAt: now + ctx.config.queueTimeoutMs,
      conversationKey: route.request.conversationKey,
    });
  } catch (err) {
    if (err instanceof StoreError && err.code === "queue_full") {
      throw new ApiError("overloaded", "The queue is full; retry shortly.", { retryAfterSeconds: 5 });
    }
    throw err;
  }
  ctx.metrics.jobQueued();
  return withModelNamed(new JobRun(ctx, id, now), route.model.name);
}

const singleJob: SourceFactory = (ctx, d, id, now) => startJob(ctx, d.request, d.mode ?? "generate", id, now);

export async function dispatchChat(ctx: RouterContext, d: ChatDispatch): Promise<Response> {
  const now = ctx.now();
  const id = crypto.randomUUID().replaceAll("-", "");
  const job = await (d.source ?? singleJob)(ctx, d, id, now);
  const onAbort = () => job.cancel("caller_left");
  d.signal.addEventListener("abort", onAbort, { once: true });
  try {
    // Wait for the first event: until a worker starts the job, failures are still HTTP errors.
    const first = await job.next(d.signal, false);
    const failure = first.find((e) => e.type === "error");
    if (failure && !first.some(isOutput)) throw errorFromEvent(failure);
    const meta: ResponseMeta = {
      id,
      created: Math.floor(now / 1000),
      model: startModel(first) ?? ctx.config.policy.model.name,
    };
    if (!d.stream) {
      const events = [...first];
      while (!job.finished) events.push(...await job.next(d.signal, false));
      const error = events.find((e) => e.type === "error");
      if (error) throw errorFromEvent(error);
      return json(d.flavour.collect(events, meta, d.request, d.render), d.flavour.responseHeaders(id));
    }
    d.signal.removeEventListener("abort", onAbort);
    return sse(streamBody(ctx, job, d, meta, first), d.flavour.responseHeaders(id));
  } catch (err) {
    d.signal.removeEventListener("abort", onAbort);
    if (!job.finished) await job.cancel(d.signal.aborted ? "caller_left" : "timeout");
    throw err;
  }
}

function streamBody(
  ctx: RouterContext,
  job: EventSource,
  d: ChatDispatch,
  meta: ResponseMeta,
  first: JobEvent[],
): ReadableStream<Uint8Array> {
  const encoder = d.flavour.encoder(meta, d.request, d.render);
  const bytes = new TextEncoder();
  const aborter = new AbortController();
  let pending: JobEvent[] | undefined = first;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const events = pending ?? await job.next(aborter.signal, true);
        pending = undefined;
        let text = "";
        for (const event of events) {
          text += event.type === "error" ? encoder.fail(errorFromEvent(event)) : encoder.push(event);
        }
        if (events.length === 0) text = encoder.keepAlive();
        if (text) controller.enqueue(bytes.encode(text));
        if (job.finished) controller.close();
      } catch (err) {
        // The store failed mid-stream: say so in the stream rather than ending it as if complete.
        ctx.log.warn("stream relay failed", { job: job.id, error: err });
        controller.enqueue(bytes.encode(encoder.fail(new ApiError("api_error", "The router lost track of this job."))));
        controller.close();
        await job.cancel("timeout").catch(() => {});
      }
    },
    async cancel() {
      aborter.abort();
      await job.cancel("caller_left");
    },
  });
}

/** One caller's view of one job: reads events in order, enforces the deadlines, cancels at most once. */
export class JobRun implements EventSource {
  #cursor = "";
  #queued = true;
  finished = false;
  #cancelled = false;
  readonly #deadlineAt: number;
  readonly #queueDeadlineAt: number;
  readonly #store: JobStore;
  readonly #timing: JobTiming;

  constructor(readonly ctx: RouterContext, readonly id: string, now: number) {
    this.#store = ctx.store;
    this.#timing = ctx.metrics.trackJob(id, now);
    this.#deadlineAt = now + ctx.config.jobTimeoutMs;
    this.#queueDeadlineAt = now + ctx.config.queueTimeoutMs;
  }

  /**
   * The next events (possibly none after `READ_WAIT_MS` when `allowEmpty`); cancels the job when a deadline passes
   * so that the timeout reaches the caller as an error event.
   */
  async next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]> {
    for (;;) {
      this.ctx.reapSoon();
      const now = this.ctx.now();
      // Until a worker takes the job, the queue deadline is the nearer one.
      const deadline = this.#queued ? Math.min(this.#deadlineAt, this.#queueDeadlineAt) : this.#deadlineAt;
      const wait = Math.max(0, Math.min(READ_WAIT_MS, deadline - now));
      const read = await this.#read(wait, signal);
      this.#cursor = read.cursor;
      this.#queued = read.state === "queued";
      this.#timing.saw(read.events, this.ctx.now());
      if (read.state !== "queued" && read.state !== "running") this.finished = true;
      if (read.events.length > 0 || this.finished) return read.events;
      if (signal.aborted) throw new ApiError("api_error", "The caller disconnected.");
      const after = this.ctx.now();
      if (after >= this.#deadlineAt) await this.cancel("timeout");
      else if (read.state === "queued" && after >= this.#queueDeadlineAt) await this.cancel("queue_timeout");
      else if (allowEmpty) return [];
    }
  }

  /**
   * One read of the job's events. A store outage of a few seconds (Redis restarting, a network blip) is ridden out
   * with short retries — the job is intact in the store — before the caller is told the router lost track of it.
   */
  async #read(wait: number, signal: AbortSignal): Promise<Awaited<ReturnType<JobStore["readEvents"]>>> {
    const giveUpAt = performance.now() + STORE_OUTAGE_GRACE_MS;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#store.readEvents(this.id, this.#cursor, wait, signal);
      } catch (err) {
        if (!(err instanceof StoreError) || err.code !== "unavailable" || performance.now() > giveUpAt) throw err;
        if (signal.aborted) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async cancel(reason: "caller_left" | "timeout" | "queue_timeout"): Promise<void> {
    if (this.#cancelled || this.finished) return;
    this.#cancelled = true;
    await this.#store.cancel(this.id, reason);
    this.ctx.metrics.jobCancelled(reason);
    this.#timing.cancelled(reason, this.ctx.now());
  }
}

function startModel(events: JobEvent[]): string | undefined {
  for (const e of events) if (e.type === "start") return e.model;
  return undefined;
}

/** The caller-facing error for an error event (the router's own codes, or a worker's). */
export function errorFromEvent(event: Extract<JobEvent, { type: "error" }>): ApiError {
  switch (event.code) {
    case "timeout":
      return new ApiError("timeout", event.message);
    case "queue_timeout":
      return new ApiError("overloaded", event.message, { retryAfterSeconds: 10 });
    case "worker_lost":
      return new ApiError("api_error", event.message, { status: 502 });
    case "unknown_job":
      // The store no longer has the job (Redis lost its data, or it expired): not the worker's failure.
      return new ApiError("overloaded", "The router's job store lost this request; retry it.", {
        retryAfterSeconds: 2,
      });
    case "invalid_request":
    case "context_length_exceeded":
      return new ApiError("invalid_request", event.message, { code: event.code });
    case "rate_limited":
      return new ApiError("rate_limit", event.message, { retryAfterSeconds: event.retryAfterSeconds });
    default:
      return new ApiError("api_error", `The worker failed: ${event.message}`, { code: event.code });
  }
}

export function json(body: unknown, headers: Record<string, string> = {}, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function sse(body: ReadableStream<Uint8Array>, headers: Record<string, string>): Response {
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...headers,
    },
  });
}
