/**
 * Chooses the store from the configuration: Upstash Redis when AUXOT_REDIS_URL (or UPSTASH_REDIS_REST_URL) is
 * set, the embedded store otherwise.
 */
import type { RouterConfig } from "../config.ts";
import { EmbeddedStore } from "./embedded.ts";
import type { JobStore, StoreOptions } from "./store.ts";
import { UpstashStore } from "./upstash/store.ts";
import type { WakeupDelivery } from "./wakeup.ts";

export function createStore(
  config: RouterConfig,
  options: Partial<StoreOptions> = {},
  runtime: { wakeups?: WakeupDelivery; subscribe?: boolean } = {},
): JobStore {
  const opts: Partial<StoreOptions> = { leaseMs: config.leaseMs, ...options };
  if (config.redis) {
    return new UpstashStore({
      url: config.redis.url,
      token: config.redis.token,
      options: opts,
      lazySweeps: true,
      ...runtime,
    });
  }
  // In one process a caller reads its job's last events within moments of the end: keeping finished jobs (payload
  // and events) for a minute made memory follow throughput (~650 MB at ~870 requests/s).
  return new EmbeddedStore({ finishedTtlMs: 5_000, ...opts });
}
