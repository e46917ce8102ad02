/**
 * Lua step `enqueue`: adds a job, bounded per lane. When the lane holds no queued job and a worker is parked on it
 * (its last claim or finished job left it with a free slot and nothing to claim), the job is handed to that worker
 * directly: leased to it as a claim would, and pushed on its hand-off list, which its parked poll's BLPOP takes.
 * That saves the worker's claim: a request costs enqueue, the worker's BLPOP and its posts. Otherwise the job goes
 * to the tail of its lane and a wake token wakes one parked worker, which claims it.
 *
 * KEYS  job, lane, lanes, deadlines, queueDeadlines, callers, affinity (affinity:{lane}), parked (parked:{lane}),
 *       running, workers, conversationHolders
 * ARGV  id, laneName, payload (JSON), deadlineAt, queueDeadlineAt, conversationKey ('' = none), now, maxQueued,
 *       safetyTtlMs, wakePrefix, wakeCap, wakeTtlMs, token (unique per enqueue call), leaseMs, workerTtlMs,
 *       workerPrefix, workerConversationsPrefix, parkedPrefix, handoffPrefix
 * Returns {'ok', handedTo ('' = queued)} | {'queue_full', queuedNow} | {'duplicate'}
 * Repeatable: a retry of this call (same token) whose first run stored the job answers 'ok' and changes nothing.
 * Side effects: job hash created (attempt 1, next 0) with a safety TTL; deadline and caller (seen now) indexes.
 *   Queued: state queued; id pushed to the lane; lane added to `lanes`; queue-deadline index; affinity index if a
 *   conversation key; a wake token on wake:{lane}.
 *   Handed off: the worker unparked from all its lanes (one hand-off per registration); state running, worker set,
 *   `handoff` = the list element, claimedAt = now (for a worker that postsProgress), leased (running); its
 *   conversation recorded as held by the worker; the element `[id, payload, 1, deadlineAt]` pushed on
 *   handoff:{worker} (TTL workerTtl).
 * Which worker: the parked holder of the job's conversation (prompt-cache affinity); none when that conversation's
 *   holder is live with a free slot but not parked (its next claim takes it, as in claim.ts); else the worker
 *   parked most recently (the likeliest to be alive). A worker gone while parked is recovered from by the caller
 *   (docs/store.md, "Lost wake-ups"): its job is requeued once it has posted nothing for a few seconds.
 */
import { HOLDER_CAN_TAKE, WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const enqueueScript = defineScript({
  name: "enqueue",
  keys: [
    "job",
    "lane",
    "lanes",
    "deadlines",
    "queueDeadlines",
    "callers",
    "affinity",
    "parked",
    "running",
    "workers",
    "conversationHolders",
  ],
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
    "leaseMs",
    "workerTtlMs",
    "workerPrefix",
    "workerConversationsPrefix",
    "parkedPrefix",
    "handoffPrefix",
  ],
  helpers: [WAKE_LANE, HOLDER_CAN_TAKE],
  body: `
local existing = redis.call('HGET', KEY_job, 'token')
if existing then
  if existing == ARG_token then return {'ok', redis.call('HGET', KEY_job, 'handedTo') or ''} end
  return {'duplicate'}
end
if redis.call('EXISTS', KEY_job) == 1 then return {'duplicate'} end
local queued = redis.call('LLEN', KEY_lane)
if queued >= tonumber(ARG_maxQueued) then return {'queue_full', queued} end
local now = tonumber(ARG_now)
local conv = ARG_conversationKey
local workerTtl = tonumber(ARG_workerTtlMs)

local function parkedWorker()
  if queued > 0 then return nil end -- first in, first out: queued jobs go first
  redis.call('ZREMRANGEBYSCORE', KEY_parked, '-inf', now)
  if conv ~= '' then
    local holder = redis.call('HGET', KEY_conversationHolders, conv)
    if holder then
      if redis.call('ZSCORE', KEY_parked, holder) and redis.call('EXISTS', ARG_workerPrefix .. holder) == 1 then
        return holder
      end
      if holderCanTake(holder, conv, now) then return nil end
    end
  end
  for _, candidate in ipairs(redis.call('ZREVRANGE', KEY_parked, 0, 3)) do
    if redis.call('EXISTS', ARG_workerPrefix .. candidate) == 1 then return candidate end
    redis.call('ZREM', KEY_parked, candidate)
  end
  return nil
end

redis.call('HSET', KEY_job, 'lane', ARG_laneName, 'payload', ARG_payload, 'deadlineAt', ARG_deadlineAt,
  'queueDeadlineAt', ARG_queueDeadlineAt, 'conv', conv, 'attempt', 1,
  'enqueuedAt', ARG_now, 'next', 0, 'hasOutput', 0, 'token', ARG_token)
redis.call('PEXPIRE', KEY_job, ARG_safetyTtlMs)
redis.call('ZADD', KEY_deadlines, ARG_deadlineAt, ARG_id)
redis.call('ZADD', KEY_callers, ARG_now, ARG_id)

local target = parkedWorker()
if target then
  local workerKey = ARG_workerPrefix .. target
  local w = redis.call('HMGET', workerKey, 'lanes', 'postsProgress', 'free')
  for _, l in ipairs(cjson.decode(w[1] or '[]')) do redis.call('ZREM', ARG_parkedPrefix .. l, target) end
  redis.call('ZREM', KEY_parked, target)
  redis.call('HSET', workerKey, 'free', math.max(0, (tonumber(w[3]) or 1) - 1))
  local element = cjson.encode({ARG_id, ARG_payload, 1, tonumber(ARG_deadlineAt)})
  redis.call('HSET', KEY_job, 'state', 'running', 'worker', target, 'handoff', element, 'handedTo', target)
  if w[2] == '1' then redis.call('HSET', KEY_job, 'claimedAt', now) end
  redis.call('ZADD', KEY_running, now + tonumber(ARG_leaseMs), ARG_id)
  if conv ~= '' then
    local convsKey = ARG_workerConversationsPrefix .. target
    redis.call('SADD', convsKey, conv)
    redis.call('PEXPIRE', convsKey, workerTtl)
    redis.call('HSET', KEY_conversationHolders, conv, target)
    redis.call('PEXPIRE', KEY_conversationHolders, workerTtl)
  end
  local handoffKey = ARG_handoffPrefix .. target
  redis.call('RPUSH', handoffKey, element)
  redis.call('PEXPIRE', handoffKey, workerTtl)
  return {'ok', target}
end

redis.call('HSET', KEY_job, 'state', 'queued')
redis.call('RPUSH', KEY_lane, ARG_id)
redis.call('SADD', KEY_lanes, ARG_laneName)
redis.call('ZADD', KEY_queueDeadlines, ARG_queueDeadlineAt, ARG_id)
if conv ~= '' then redis.call('ZADD', KEY_affinity, ARG_now, ARG_id) end
wakeLane(ARG_laneName)
return {'ok', ''}
`,
});
