/**
 * Lua step `read_events`: reads a job's stored batches after a cursor and records that its caller is alive.
 *
 * KEYS  job, events, callers
 * ARGV  id, cursor (a stream id; '' = from the start), now, count (batches at most)
 * Returns {'unknown_job'} | {'ok', state, entries} — entries as XRANGE returns them: {{id, {'e', json, 's', state}}, ...}
 * Side effects: callers[id] = now while the job is live (reap cancels jobs whose caller stopped reading).
 */
import { defineScript } from "./runner.ts";

export const readEventsScript = defineScript({
  name: "read_events",
  keys: ["job", "events", "callers"],
  args: ["id", "cursor", "now", "count"],
  body: `
local state = redis.call('HGET', KEY_job, 'state')
if not state then return {'unknown_job'} end
if state == 'queued' or state == 'running' then redis.call('ZADD', KEY_callers, 'XX', ARG_now, ARG_id) end
local from = '-'
if ARG_cursor ~= '' then from = '(' .. ARG_cursor end
return {'ok', state, redis.call('XRANGE', KEY_events, from, '+', 'COUNT', ARG_count)}
`,
});
