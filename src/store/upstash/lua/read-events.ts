/**
 * Lua step `read_events`: reads a job's stored batches after a cursor and records that its caller is alive.
 *
 * KEYS  job, events, callers, running, lanes, queueDeadlines
 * ARGV  id, cursor (a stream id; '' = from the start), now, count (batches at most), recover ('1' = the caller's
 *       recovery check, see below), unconfirmedMs, lanePrefix, affinityPrefix, wakePrefix, wakeCap, wakeTtlMs, handoffPrefix
 * Returns {'unknown_job'} | {'ok', state, entries} — entries as XRANGE returns them: {{id, {'e', json, 's', state}}, ...}
 * Side effects: callers[id] = now while the job is live (reap cancels jobs whose caller stopped reading).
 *   With recover (docs/store.md, "Lost wake-ups"): a job still queued whose lane holds no wake token gets one (a poll
 *   took it and never claimed); a job claimed at least unconfirmedMs ago whose worker has posted nothing since (next
 *   = 0; a live worker posts progress within about a second) is put back at the head of its lane and its lane woken:
 *   the claim's poll outlived its worker (under workerd a poll whose client left still runs and claims).
 */
import { DROP_HANDOFF, REQUEUE_JOB, WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const readEventsScript = defineScript({
  name: "read_events",
  keys: ["job", "events", "callers", "running", "lanes", "queueDeadlines"],
  args: [
    "id",
    "cursor",
    "now",
    "count",
    "recover",
    "unconfirmedMs",
    "lanePrefix",
    "affinityPrefix",
    "wakePrefix",
    "wakeCap",
    "wakeTtlMs",
    "handoffPrefix",
  ],
  helpers: [WAKE_LANE, DROP_HANDOFF, REQUEUE_JOB],
  body: `
local job = redis.call('HMGET', KEY_job, 'state', 'lane', 'next', 'claimedAt')
local state = job[1]
if not state then return {'unknown_job'} end
if state == 'queued' or state == 'running' then redis.call('ZADD', KEY_callers, 'XX', ARG_now, ARG_id) end
if ARG_recover == '1' and job[2] then
  if state == 'queued' then
    if redis.call('LLEN', ARG_lanePrefix .. job[2]) > 0 and redis.call('EXISTS', ARG_wakePrefix .. job[2]) == 0 then
      wakeLane(job[2])
    end
  elseif state == 'running' and job[3] == '0' and job[4]
      and tonumber(job[4]) + tonumber(ARG_unconfirmedMs) <= tonumber(ARG_now) then
    requeueJob(ARG_id, KEY_job, tonumber(ARG_now))
    state = 'queued'
  end
end
local from = '-'
if ARG_cursor ~= '' then from = '(' .. ARG_cursor end
return {'ok', state, redis.call('XRANGE', KEY_events, from, '+', 'COUNT', ARG_count)}
`,
});
