/**
 * What request handlers share: configuration, the store, the logger, the clock, metrics, and the opportunistic
 * sweeper. Built once per isolate/process by the runtime entry; nothing here touches a runtime global.
 */
import type { KeyVerifier } from "../auth/verifier.ts";
import type { RouterConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { JobStore } from "../store/store.ts";

export interface RouterContext {
  config: RouterConfig;
  store: JobStore;
  log: Logger;
  now: () => number;
  metrics: Metrics;
  auth: KeyVerifier;
  /** Runs the store's sweep (lost leases, deadlines, dead callers) at most once a second per instance. */
  reapSoon(): void;
  /** Keeps background work alive after a response (Workers' waitUntil); Deno just lets the promise run. */
  background(work: Promise<unknown>): void;
}

const STUCK_SWEEP_MS = 60_000;

export function createReaper(
  store: JobStore,
  log: Logger,
  metrics: Metrics,
  now: () => number,
  background: (p: Promise<unknown>) => void,
  intervalMs = 1_000,
): () => void {
  let last = 0;
  let running = false;
  return () => {
    const t = now();
    // A sweep still "running" a minute on never settled (on Workers, its request's waitUntil was cut short): sweep
    // again rather than never.
    if ((running && t - last < STUCK_SWEEP_MS) || t - last < intervalMs) return;
    last = t;
    running = true;
    background(
      store.reap()
        .then((r) => {
          metrics.reaped(r);
          if (r.requeued + r.failed + r.cancelled + r.timedOut > 0) log.info("swept jobs", { ...r });
        })
        .catch((err) => log.warn("sweep failed", { error: err }))
        .finally(() => running = false),
    );
  };
}
