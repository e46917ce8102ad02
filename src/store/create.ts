/**
 * Chooses the store from the configuration: Upstash Redis when AUXOT_REDIS_URL (or UPSTASH_REDIS_REST_URL) is
 * set, the embedded store otherwise.
 */
import type { Env, RouterConfig } from "../config.ts";
import { EmbeddedStore } from "./embedded.ts";
import type { JobStore, StoreOptions } from "./store.ts";

export function createStore(config: RouterConfig, _env: Env, options: Partial<StoreOptions> = {}): JobStore {
  const opts: Partial<StoreOptions> = { leaseMs: config.leaseMs, ...options };
  if (config.redisUrl) throw new Error("The Upstash store is not available yet.");
  return new EmbeddedStore(opts);
}
