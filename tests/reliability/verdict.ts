/**
 * What every fault run must satisfy, whatever went wrong during it: each request accounted for exactly once, none
 * hung, none with duplicated or silently truncated output, every error in the API's own shape, and nothing leaked
 * once the load drained (jobs, slots, Redis keys without a TTL or living past the finished-job TTL, Redis keys the
 * sweep would not remove).
 */
import type { ScenarioFigures } from "./faults.ts";

/** Once drained, every job is finished: its keys expire within the routers' finished TTL (60 s, StoreOptions). */
export const MAX_FINISHED_TTL_MS = 60_000;

/** The invariants a run broke (empty when it is healthy). */
export function violations(f: ScenarioFigures): string[] {
  const problems: string[] = [];
  const t = f.tally;
  const accounted = t.completed + t.failed + t.connection_lost + t.truncated + t.duplicated + t.malformed + t.hung;
  if (accounted !== f.requests) problems.push(`${accounted} outcomes for ${f.requests} requests`);
  if (t.hung > 0) problems.push(`${t.hung} hung`);
  if (t.duplicated > 0) problems.push(`${t.duplicated} with wrong or duplicated output`);
  if (t.truncated > 0) problems.push(`${t.truncated} streams ended without a terminator or an error`);
  if (t.malformed > 0) problems.push(`${t.malformed} errors not in the API's JSON shape`);
  if (t.completed === 0) problems.push("nothing completed");
  const l = f.leaks;
  if (l.jobs !== 0) problems.push(`${l.jobs} jobs still running or queued after the drain`);
  if (l.busySlots !== 0) problems.push(`${l.busySlots} busy slots on idle workers after the drain`);
  if (l.redisKeysWithoutTtl !== 0) problems.push(`${l.redisKeysWithoutTtl} Redis keys without a TTL`);
  if (l.redisLiveIndexEntries !== 0) problems.push(`${l.redisLiveIndexEntries} live index entries in Redis`);
  if (l.redisLongestJobTtlMs > MAX_FINISHED_TTL_MS) {
    problems.push(`a finished job's keys live ${l.redisLongestJobTtlMs} ms, past the finished TTL`);
  }
  if (l.redisJobKeysAfterSweep !== 0) problems.push(`${l.redisJobKeysAfterSweep} job keys survive the sweep`);
  return problems;
}

/** Throws with the figures when a run broke an invariant (for tests). */
export function assertHealthy(f: ScenarioFigures): void {
  const problems = violations(f);
  if (problems.length > 0) {
    throw new Error(
      `${f.store}/${f.fault}: ${problems.join("; ")}\n` +
        JSON.stringify({ tally: f.tally, leaks: f.leaks, failures: f.failures }, null, 2),
    );
  }
}
