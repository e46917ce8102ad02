/**
 * Every Redis key the Upstash store uses, from one builder with a versioned prefix (`<prefix>:v1:`), so a schema
 * change can move to `v2` without reading old data, and tests can isolate themselves with a fresh prefix.
 * Lua scripts that derive a key from data (a job id found in an index, a job's lane) receive the matching
 * prefix from `keyPrefixes()` — key names are spelled here and nowhere else.
 *
 * | key                       | type   | TTL (real time)                                   | scripts                                      |
 * | ------------------------- | ------ | ------------------------------------------------- | -------------------------------------------- |
 * | job:{id}                  | hash   | deadline + finishedTtl while live; finishedTtl once finished | enqueue, claim, append, read, cancel, reap, fleet |
 * | events:{id}               | stream | as its job (one entry per stored batch: `e` = JSON array, `s` = state after) | append, read, cancel, reap |
 * | lane:{lane}               | list   | none; empty lists vanish (job ids, head = next)   | enqueue, claim, append (requeue), cancel, reap |
 * | wake:{lane}               | list   | WAKE_TTL_MS; at most WAKE_CAP tokens (BLPOP wakes) | enqueue, append (requeue), reap (requeue)   |
 * | affinity:{lane}           | zset   | none; empties vanish (queued jobs with a conversation key → enqueuedAt) | enqueue, claim, cancel, reap, append |
 * | lanes                     | set    | none; empties vanish (lanes with queued jobs)     | enqueue, claim, cancel, reap, append, fleet  |
 * | running                   | zset   | none; empties vanish (running job → lease expiry)  | claim, append, cancel, reap, fleet          |
 * | deadlines                 | zset   | none; empties vanish (live job → deadlineAt)       | enqueue, append, cancel, reap               |
 * | queue-deadlines           | zset   | none; empties vanish (queued job → queueDeadlineAt) | enqueue, claim, append, cancel, reap       |
 * | callers                   | zset   | none; empties vanish (live job → caller last read) | enqueue, read, append, cancel, reap         |
 * | finished                  | zset   | 2 × finishedTtl + 1 s (finished job → finishedAt)  | append, cancel, reap                        |
 * | workers                   | zset   | workerTtl (worker id → last seen)                  | claim, reap, fleet                          |
 * | worker:{id}               | hash   | workerTtl (`info` JSON, `seen`, `free`, `lanes` JSON, `postsProgress`) | claim, reap, fleet, enqueue, append |
 * | worker-conversations:{id} | set    | workerTtl (conversation keys the worker caches)    | claim, reap                                 |
 * | conversation-holders      | hash   | workerTtl (conversation key → worker id)           | claim, reap                                 |
 * | reap-lock                 | string | REAP_LOCK_MS (`SET NX PX`: one sweeping instance)  | reap                                        |
 * | verified-key:{digest}     | string | the entry's ttlMs (`expiresAt|role`)               | none (GET / SET PX)                         |
 * | counters                  | hash   | none (fleet-wide metric name → running sum)        | add_counters (read with HGETALL)            |
 * | counters-flush:{id}       | string | 2 min (marks a flush as applied: retries add nothing) | add_counters                             |
 * | command-minutes           | hash   | 2 h (minute number → store commands counted in it) | add_counters (read with HMGET)              |
 * | claim-reply:{worker}      | string | ≤ 20 s, until its next claim (the last claim that handed out jobs, for a retry) | claim            |
 * | parked:{lane}             | zset   | 2 × PARK_MS (worker id → parked until: whom an enqueue may hand a job) | claim, append, enqueue |
 * | handoff:{worker}          | list   | workerTtl (jobs handed to it: `[id, payload, attempt, deadlineAt]` JSON) | enqueue, claim, BLPOP; requeue, cancel |
 *
 * Deadlines, leases and TTL decisions use the store's injectable clock (scores and fields hold those times); the
 * real-time TTLs above are a safety net so that nothing outlives its job even when no router sweeps.
 */

export const KEY_SCHEMA_VERSION = "v1";

export interface StoreKeys {
  /** `<prefix>:v1:` — every key starts with it. */
  readonly root: string;
  job(id: string): string;
  events(id: string): string;
  lane(lane: string): string;
  wake(lane: string): string;
  affinity(lane: string): string;
  worker(id: string): string;
  workerConversations(id: string): string;
  verifiedKey(digest: string): string;
  countersFlush(id: string): string;
  claimReply(workerId: string): string;
  parked(lane: string): string;
  handoff(workerId: string): string;
  readonly commandMinutes: string;
  readonly lanes: string;
  readonly running: string;
  readonly deadlines: string;
  readonly queueDeadlines: string;
  readonly callers: string;
  readonly finished: string;
  readonly workers: string;
  readonly conversationHolders: string;
  readonly reapLock: string;
  readonly counters: string;
}

export function storeKeys(prefix = "auxot"): StoreKeys {
  const root = `${prefix}:${KEY_SCHEMA_VERSION}:`;
  return {
    root,
    job: (id) => `${root}job:${id}`,
    events: (id) => `${root}events:${id}`,
    lane: (lane) => `${root}lane:${lane}`,
    wake: (lane) => `${root}wake:${lane}`,
    affinity: (lane) => `${root}affinity:${lane}`,
    worker: (id) => `${root}worker:${id}`,
    workerConversations: (id) => `${root}worker-conversations:${id}`,
    verifiedKey: (digest) => `${root}verified-key:${digest}`,
    countersFlush: (id) => `${root}counters-flush:${id}`,
    claimReply: (workerId) => `${root}claim-reply:${workerId}`,
    parked: (lane) => `${root}parked:${lane}`,
    handoff: (workerId) => `${root}handoff:${workerId}`,
    commandMinutes: `${root}command-minutes`,
    lanes: `${root}lanes`,
    running: `${root}running`,
    deadlines: `${root}deadlines`,
    queueDeadlines: `${root}queue-deadlines`,
    callers: `${root}callers`,
    finished: `${root}finished`,
    workers: `${root}workers`,
    conversationHolders: `${root}conversation-holders`,
    reapLock: `${root}reap-lock`,
    counters: `${root}counters`,
  };
}

/** Prefixes of the per-id keys, for scripts that derive keys from ids they read (`prefix .. id` in Lua). */
export function keyPrefixes(keys: StoreKeys) {
  return {
    jobPrefix: keys.job(""),
    eventsPrefix: keys.events(""),
    lanePrefix: keys.lane(""),
    wakePrefix: keys.wake(""),
    affinityPrefix: keys.affinity(""),
    workerPrefix: keys.worker(""),
    workerConversationsPrefix: keys.workerConversations(""),
    parkedPrefix: keys.parked(""),
    handoffPrefix: keys.handoff(""),
  };
}
