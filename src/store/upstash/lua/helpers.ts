/**
 * Lua functions shared by several scripts (each script is still one atomic step; these are spliced into its
 * source by `defineScript`). Each helper names the KEY_/ARG_ locals it relies on. Times are the store's clock
 * (milliseconds, integers); TTLs set here are real-time safety nets (see keys.ts).
 */
import type { LuaHelper } from "./runner.ts";

/** A published batch larger than this goes without its events: its subscriber reads them with one XREAD. */
export const PUBLISH_EVENTS_MAX = 65_536;

/** Pushes a wake token for a lane's parked workers (BLPOP), keeping at most `wakeCap` and expiring them. */
export const WAKE_LANE: LuaHelper = {
  keys: [],
  args: ["wakePrefix", "wakeCap", "wakeTtlMs"],
  source: `
local function wakeLane(lane)
  local wakeKey = ARG_wakePrefix .. lane
  redis.call('RPUSH', wakeKey, '1')
  redis.call('LTRIM', wakeKey, -tonumber(ARG_wakeCap), -1)
  redis.call('PEXPIRE', wakeKey, ARG_wakeTtlMs)
end`,
};

/**
 * Appends one batch entry (`e` = JSON array of events, `s` = job state after it) to a job's stream and returns the
 * previous entry's id ('' if none) and the new id: a local reader whose cursor is the previous id can take the
 * batch from memory. The stream lives as long as its job hash.
 * It also PUBLISHes the entry on the channel named like the stream (`prev|id|state|events`, events left out past
 * PUBLISH_EVENTS_MAX bytes): a caller subscribed to it (reads.ts, on Workers) gets every batch for its one SUBSCRIBE
 * instead of an XREAD each. Inside the script it is no extra command; with nobody subscribed it costs Redis nothing.
 */
export const ADD_ENTRY: LuaHelper = {
  keys: [],
  args: [],
  source: `
local function addEntry(jobKey, eventsKey, eventsJson, entryState)
  local prev = ''
  local last = redis.call('XREVRANGE', eventsKey, '+', '-', 'COUNT', 1)
  if #last > 0 then prev = last[1][1] end
  local id = redis.call('XADD', eventsKey, '*', 'e', eventsJson, 's', entryState)
  local published = eventsJson
  if #published > ${PUBLISH_EVENTS_MAX} then published = '' end
  redis.call('PUBLISH', eventsKey, prev .. '|' .. id .. '|' .. entryState .. '|' .. published)
  local pttl = redis.call('PTTL', jobKey)
  if pttl > 0 then redis.call('PEXPIRE', eventsKey, pttl) end
  return prev, id
end`,
};

/** Ends a job: state and finishedAt recorded, out of every live index, into `finished`, keys expire after the TTL. */
export const FINISH_JOB: LuaHelper = {
  keys: ["running", "deadlines", "queueDeadlines", "callers", "finished"],
  args: ["finishedTtlMs"],
  source: `
local function finishJob(id, jobKey, eventsKey, state, now, keepWorker)
  redis.call('HSET', jobKey, 'state', state, 'finishedAt', now)
  if not keepWorker then
    -- who finished it: a retried post of that worker's last batch is then recognised as already stored
    local worker = redis.call('HGET', jobKey, 'worker')
    if worker then redis.call('HSET', jobKey, 'lastWorker', worker) end
    redis.call('HDEL', jobKey, 'worker')
  end
  redis.call('ZREM', KEY_running, id)
  redis.call('ZREM', KEY_deadlines, id)
  redis.call('ZREM', KEY_queueDeadlines, id)
  redis.call('ZREM', KEY_callers, id)
  redis.call('ZADD', KEY_finished, now, id)
  local ttl = tonumber(ARG_finishedTtlMs)
  redis.call('PEXPIRE', KEY_finished, ttl * 2 + 1000)
  redis.call('PEXPIRE', jobKey, ttl)
  redis.call('PEXPIRE', eventsKey, ttl)
end`,
};

/**
 * Takes a queued job out of its lane (and the lane's affinity index). When the lane empties it is forgotten, with
 * its wake tokens: they only matter while the lane holds jobs.
 */
export const REMOVE_QUEUED: LuaHelper = {
  keys: ["lanes"],
  args: ["lanePrefix", "affinityPrefix", "wakePrefix"],
  source: `
local function laneEmptied(lane)
  if redis.call('LLEN', ARG_lanePrefix .. lane) == 0 then
    redis.call('SREM', KEY_lanes, lane)
    redis.call('DEL', ARG_wakePrefix .. lane)
  end
end
local function removeQueued(id, lane)
  redis.call('LREM', ARG_lanePrefix .. lane, 0, id)
  redis.call('ZREM', ARG_affinityPrefix .. lane, id)
  laneEmptied(lane)
end`,
};

/**
 * Prompt-cache affinity: true while `holder` is live (seen within the worker TTL), has a free slot and still caches
 * `conv` — the conversation's next job is then left for it (claim.ts holds it back, enqueue.ts does not hand it to
 * another worker).
 */
export const HOLDER_CAN_TAKE: LuaHelper = {
  keys: ["workers"],
  args: ["workerTtlMs", "workerPrefix", "workerConversationsPrefix"],
  source: `
local function holderCanTake(holder, conv, now)
  local seen = redis.call('ZSCORE', KEY_workers, holder)
  if not seen or tonumber(seen) + tonumber(ARG_workerTtlMs) <= now then return false end
  if tonumber(redis.call('HGET', ARG_workerPrefix .. holder, 'free') or '0') <= 0 then return false end
  return redis.call('SISMEMBER', ARG_workerConversationsPrefix .. holder, conv) == 1
end`,
};

/**
 * A job an enqueue handed to a parked worker (enqueue.ts) that the worker has not taken yet leaves that worker's
 * hand-off list, so a job requeued or cancelled meanwhile is never run by it. The job's `handoff` field is the exact
 * list element; it stays after the worker's poll took the element (LREM then removes nothing).
 */
export const DROP_HANDOFF: LuaHelper = {
  keys: [],
  args: ["handoffPrefix"],
  source: `
local function dropHandoff(jobKey)
  local j = redis.call('HMGET', jobKey, 'handoff', 'worker')
  if not j[1] then return end
  if j[2] then redis.call('LREM', ARG_handoffPrefix .. j[2], 0, j[1]) end
  redis.call('HDEL', jobKey, 'handoff')
end`,
};

/**
 * A worker that polls with a free slot while its lanes hold no queued job is parked on them until `now + parkMs`:
 * the next enqueue on one of them may hand it the job directly (enqueue.ts), with no claim. One hand-off per
 * registration: the enqueue unparks it from all its lanes, and its next claim or finished job parks it again.
 */
export const PARK_WORKER: LuaHelper = {
  keys: [],
  args: ["parkedPrefix", "parkMs"],
  source: `
local function parkWorker(workerId, lanes, now)
  local parkMs = tonumber(ARG_parkMs)
  for _, lane in ipairs(lanes) do
    local parkedKey = ARG_parkedPrefix .. lane
    redis.call('ZADD', parkedKey, now + parkMs, workerId)
    redis.call('PEXPIRE', parkedKey, 2 * parkMs)
  end
end
local function unparkWorker(workerId, lanes)
  for _, lane in ipairs(lanes) do redis.call('ZREM', ARG_parkedPrefix .. lane, workerId) end
end`,
};

/**
 * Puts a job that produced no output back at the head of its lane (attempt + 1) and wakes a worker. Needs WAKE_LANE
 * and DROP_HANDOFF.
 */
export const REQUEUE_JOB: LuaHelper = {
  keys: ["running", "lanes", "queueDeadlines"],
  args: ["lanePrefix", "affinityPrefix"],
  source: `
local function requeueJob(id, jobKey, now)
  dropHandoff(jobKey)
  local j = redis.call('HMGET', jobKey, 'lane', 'conv', 'queueDeadlineAt')
  local lane = j[1]
  redis.call('HSET', jobKey, 'state', 'queued', 'next', 0, 'hasOutput', 0, 'enqueuedAt', now)
  redis.call('HINCRBY', jobKey, 'attempt', 1)
  redis.call('HDEL', jobKey, 'worker')
  redis.call('ZREM', KEY_running, id)
  redis.call('LPUSH', ARG_lanePrefix .. lane, id)
  redis.call('SADD', KEY_lanes, lane)
  redis.call('ZADD', KEY_queueDeadlines, j[3], id)
  if j[2] and j[2] ~= '' then redis.call('ZADD', ARG_affinityPrefix .. lane, now, id) end
  wakeLane(lane)
  return lane
end`,
};

/**
 * Cancels a live job: dequeued if queued, the cancel event appended, finished as "cancelled" while keeping its
 * worker (who learns of it on its next poll or post; a hand-off it has not taken is withdrawn). Returns false when
 * the job is not live, else prev, entry ids. Needs REMOVE_QUEUED, DROP_HANDOFF, ADD_ENTRY and FINISH_JOB.
 */
export const CANCEL_JOB: LuaHelper = {
  keys: [],
  args: [],
  source: `
local function cancelJob(id, jobKey, eventsKey, eventJson, now)
  local j = redis.call('HMGET', jobKey, 'state', 'lane')
  if j[1] ~= 'queued' and j[1] ~= 'running' then return false end
  if j[1] == 'queued' then removeQueued(id, j[2]) else dropHandoff(jobKey) end
  local prev, entry = addEntry(jobKey, eventsKey, '[' .. eventJson .. ']', 'cancelled')
  finishJob(id, jobKey, eventsKey, 'cancelled', now, true)
  return prev, entry
end`,
};
