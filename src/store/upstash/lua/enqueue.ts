/**
 * Lua step `enqueue`: adds a job at the tail of its lane, bounded per lane, and wakes one parked worker.
 *
 * KEYS  job, lane, lanes, deadlines, queueDeadlines, callers, affinity (affinity:{lane})
 * ARGV  id, laneName, payload (JSON), deadlineAt, queueDeadlineAt, conversationKey ('' = none), now, maxQueued,
 *       safetyTtlMs, wakePrefix, wakeCap, wakeTtlMs, token (unique per enqueue call)
 * Returns {'ok'} | {'queue_full', queuedNow} | {'duplicate'}
 * Repeatable: a retry of this call (same token) whose first run stored the job answers 'ok' and changes nothing.
 * Side effects: job hash created (state queued, attempt 1, next 0) with a safety TTL; id pushed to the lane; lane
 *   added to `lanes`; deadline, queue-deadline and caller (seen now) indexes; affinity index if a conversation key;
 *   a wake token on wake:{lane}.
 */
import { WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const enqueueScript = defineScript({
  name: "enqueue",
  keys: ["job", "lane", "lanes", "deadlines", "queueDeadlines", "callers", "affinity"],
  args: [
    "id",
    "laneName",
    "payload",
    "deadlineAt",
    "queueDeadlineAt",
    "conversationKey",
    "now",
    "maxQueued",
    "safetyTtlMs",
    "wakePrefix",
    "wakeCap",
    "wakeTtlMs",
    "token",
  ],
  helpers: [WAKE_LANE],
  body: `
local existing = redis.call('HGET', KEY_job, 'token')
if existing then
  if existing == ARG_token then return {'ok'} end
  return {'duplicate'}
end
if redis.call('EXISTS', KEY_job) == 1 then return {'duplicate'} end
local queued = redis.call('LLEN', KEY_lane)
if queued >= tonumber(ARG_maxQueued) then return {'queue_full', queued} end
redis.call('HSET', KEY_job, 'lane', ARG_laneName, 'payload', ARG_payload, 'deadlineAt', ARG_deadlineAt,
  'queueDeadlineAt', ARG_queueDeadlineAt, 'conv', ARG_conversationKey, 'state', 'queued', 'attempt', 1,
  'enqueuedAt', ARG_now, 'next', 0, 'hasOutput', 0, 'token', ARG_token)
redis.call('PEXPIRE', KEY_job, ARG_safetyTtlMs)
redis.call('RPUSH', KEY_lane, ARG_id)
redis.call('SADD', KEY_lanes, ARG_laneName)
redis.call('ZADD', KEY_deadlines, ARG_deadlineAt, ARG_id)
redis.call('ZADD', KEY_queueDeadlines, ARG_queueDeadlineAt, ARG_id)
redis.call('ZADD', KEY_callers, ARG_now, ARG_id)
if ARG_conversationKey ~= '' then redis.call('ZADD', KEY_affinity, ARG_now, ARG_id) end
wakeLane(ARG_laneName)
return {'ok'}
`,
});
