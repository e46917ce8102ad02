/**
 * The one request pipeline every chat API shares: the request becomes a job in the store's queue, the caller
 * waits for the worker's first event (so queueing failures are still proper HTTP errors), then events are relayed
 * as they arrive — as SSE or gathered into one body. A caller that leaves cancels its job; a job past its
 * deadline is cancelled and reported as an explicit error, never as a normal-looking end.
 */
import type { ChatFlavour, RenderOptions, ResponseMeta, StreamEncoder } from "../api/flavour.ts";
import { ApiError } from "../http/errors.ts";
import { SseBytes } from "../api/sse-bytes.ts";
import { json, sse } from "../http/responses.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { JobEvent } from "../protocol/events.ts";
import { isOutput } from "../protocol/events.ts";
import type { RouterContext } from "./context.ts";
import { type EventSource, startJob } from "./job-run.ts";

// Kept for modules that imported these from here before they moved (src/dispatch/job-run.ts, src/http/responses.ts).
export { type EventSource, JobRun, startJob } from "./job-run.ts";
export { json } from "../http/responses.ts";

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
  /** Where the events come from: `singleJob` by default, the server-tool loop when app.ts chooses it. */
  source?: SourceFactory;
}

/** The plain source: one job answers (continued on another worker if its worker is lost). */
export const singleJob: SourceFactory = (ctx, d, id, now) =>
  startJob(ctx, d.request, d.mode ?? "generate", id, now, d.stream, d.signal);

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
        // The shared writer is filled and emptied with no await between: no other stream can interleave.
        batchBytes.clear();
        renderBatch(encoder, events, batchBytes);
        if (batchBytes.length > 0) controller.enqueue(batchBytes.take());
        if (job.finished) controller.close();
      } catch (err) {
        // The store failed mid-stream: say so in the stream rather than ending it as if complete.
        ctx.log.warn("stream relay failed", { job: job.id, error: err });
        batchBytes.clear();
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

/** One writer for every stream's batches (it grows to the largest batch once, instead of per stream). */
const batchBytes = new SseBytes();

/**
 * One batch of events as SSE bytes (a keep-alive for an empty batch), written in place: a token costs about the
 * bytes it sends, not its strings thrice over. The bytes are those of the encoder's strings joined and encoded.
 */
export function renderBatch(encoder: StreamEncoder, events: JobEvent[], out: SseBytes): void {
  for (const event of events) {
    if (event.type === "error") out.text(encoder.fail(errorFromEvent(event)));
    else if (!encoder.pushBytes?.(event, out)) out.text(encoder.push(event));
  }
  if (events.length === 0) out.text(encoder.keepAlive());
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
