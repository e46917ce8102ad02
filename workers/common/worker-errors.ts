/** The worker loop's failure vocabulary (worker-loop.ts, batching-sink.ts): a refusal for good, and retry pacing. */

/** The router refused this worker for good (bad key, incompatible protocol, wrong kind): exit non-zero. */
export class FatalWorkerError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = "FatalWorkerError";
  }
}

/** Jittered exponential backoff: attempt 1 waits about baseMs, doubling up to maxMs. */
export function backoff(attempt: number, baseMs = 1_000, maxMs = 30_000): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 10));
  return Math.round(exp / 2 + Math.random() * exp / 2);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
