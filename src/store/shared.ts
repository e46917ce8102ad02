/**
 * Pieces both store implementations share: the error events the router itself appends to a job's stream, and
 * the names of in-process wake-up topics.
 */
import type { JobEvent } from "../protocol/events.ts";
import type { CancelReason } from "./store.ts";

export const LANE_TOPIC_PREFIX = "lane:";
export const jobTopic = (jobId: string): string => `job:${jobId}`;

/** The event a caller reads when its job was cancelled for `reason`. `code` equals the reason. */
export function cancelEvent(reason: CancelReason): JobEvent {
  const message: Record<CancelReason, string> = {
    caller_left: "the caller disconnected; the job was cancelled",
    timeout: "the job ran past AUXOT_JOB_TIMEOUT and was cancelled",
    queue_timeout: "no worker took the job in time (is a worker connected with a free slot?)",
    shutdown: "the router is shutting down",
  };
  return { type: "error", message: message[reason], retryable: reason === "queue_timeout", code: reason };
}

/** The event a caller reads when its worker vanished after output had already been sent. */
export function workerLostEvent(): JobEvent {
  return {
    type: "error",
    message: "the worker serving this request stopped responding after output had started; the answer is incomplete",
    retryable: true,
    code: "worker_lost",
  };
}

/**
 * Whether an error event, arriving before any output, sends its job back to the queue for another worker. A rate
 * limit does not: the caller is better served by a 429 with the real retry time than by a wait that ends in a
 * queue timeout when every worker shares the limit.
 */
export function requeueable(event: Extract<JobEvent, { type: "error" }>): boolean {
  return event.retryable && event.code !== "rate_limited";
}
