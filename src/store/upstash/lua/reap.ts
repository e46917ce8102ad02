/**
 * Lua step `reap`: one sweep over the time indexes — deadlines, queue deadlines, silent callers, lost leases,
 * finished jobs past their TTL, workers unseen past theirs. Cheap when there is nothing to do (six ZRANGEBYSCORE
 * ... LIMIT calls inside one script), and bounded: at most `batch` items per index per call.
 *
 * KEYS  lock, running, deadlines, queueDeadlines, callers, finished, lanes, workers, conversationHolders
 * ARGV  token, lockMs, now, callerTimeoutMs, workerTtlMs, finishedTtlMs, batch, jobPrefix, eventsPrefix,
 *       lanePrefix, affinityPrefix, wakePrefix, wakeCap, wakeTtlMs, workerPrefix, workerConversationsPrefix,
 *       timeoutEvent, queueTimeoutEvent, callerLeftEvent, workerLostEvent (event JSON texts), handoffPrefix
 * Returns {'locked'} | {'ok', requeued, failed, cancelled, timedOut, more (0|1), touched, live}
 *   live = jobs still queued or running after the sweep (0: nothing left to sweep until a new job).
 *   touched = flat {kind, jobId, lane, ...} with kind 'requeued' | 'ended' (for in-process wake-ups).
 * Guard: `SET lock token NX PX lockMs` — while another instance's sweep holds the lock this answers 'locked' and
 *   does nothing. The holder keeps it while `more` = 1 (it calls again with the same token) and deletes it when
 *   done, so sweeps never overlap and back-to-back sweeps by one instance are not skipped.
 * Side effects, in this order per job (first match wins, as in the embedded store):
 *   past deadlineAt → cancelled "timeout"; queued past queueDeadlineAt → cancelled "queue_timeout"; caller silent
 *   for callerTimeoutMs → cancelled "caller_left"; lease expired → requeued (no output yet) or failed with the
 *   worker_lost event; finished for finishedTtlMs → job and events deleted; worker unseen for workerTtlMs → its
 *   keys deleted. Index entries whose job no longer exists are dropped. A lane holding jobs but no wake token gets
 *   one (a poll that took a token and never claimed must not leave parked workers asleep).
 */
import { ADD_ENTRY, CANCEL_JOB, DROP_HANDOFF, FINISH_JOB, REMOVE_QUEUED, REQUEUE_JOB, WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const reapScript = defineScript({
  name: "reap",
  keys: [
    "lock",
    "running",
    "deadlines",
    "queueDeadlines",
    "callers",
    "finished",
    "lanes",
    "workers",
    "conversationHolders",
  ],
  args: [
    "token",
    "lockMs",
    "now",
    "callerTimeoutMs",
    "workerTtlMs",
    "finishedTtlMs",
    "batch",
    "jobPrefix",
    "eventsPrefix",
    "lanePrefix",
    "affinityPrefix",
    "wakePrefix",
    "wakeCap",
    "wakeTtlMs",
    "workerPrefix",
    "workerConversationsPrefix",
    "timeoutEvent",
    "queueTimeoutEvent",
    "callerLeftEvent",
    "workerLostEvent",
    "handoffPrefix",
  ],
  helpers: [WAKE_LANE, ADD_ENTRY, FINISH_JOB, REMOVE_QUEUED, DROP_HANDOFF, REQUEUE_JOB, CANCEL_JOB],
  body: `
local holder = redis.call('GET', KEY_lock)
if holder and holder ~= ARG_token then return {'locked'} end
if holder then
  redis.call('PEXPIRE', KEY_lock, ARG_lockMs)
else
  redis.call('SET', KEY_lock, ARG_token, 'NX', 'PX', ARG_lockMs)
end

local now = tonumber(ARG_now)
local batch = tonumber(ARG_batch)
local more = 0
local requeued, failed, cancelled, timedOut = 0, 0, 0, 0
local touched = {}

local function due(key, maxScore, limit)
  limit = limit or batch
  local ids = redis.call('ZRANGEBYSCORE', key, '-inf', maxScore, 'LIMIT', 0, limit)
  if #ids >= limit then more = 1 end
  return ids
end

local function touch(kind, id, lane)
  touched[#touched + 1] = kind
  touched[#touched + 1] = id
  touched[#touched + 1] = lane or ''
end

-- cancels a live job for a reason; drops the index entry of a job that is gone or no longer live
local function cancelFor(index, id, eventJson)
  local jobKey = ARG_jobPrefix .. id
  local prev = cancelJob(id, jobKey, ARG_eventsPrefix .. id, eventJson, now)
  if prev == false then
    redis.call('ZREM', index, id)
    return false
  end
  touch('ended', id)
  return true
end

for _, id in ipairs(due(KEY_deadlines, now)) do
  if cancelFor(KEY_deadlines, id, ARG_timeoutEvent) then timedOut = timedOut + 1 end
end
for _, id in ipairs(due(KEY_queueDeadlines, now)) do
  if redis.call('HGET', ARG_jobPrefix .. id, 'state') == 'queued' then
    if cancelFor(KEY_queueDeadlines, id, ARG_queueTimeoutEvent) then timedOut = timedOut + 1 end
  else
    redis.call('ZREM', KEY_queueDeadlines, id)
  end
end
for _, id in ipairs(due(KEY_callers, now - tonumber(ARG_callerTimeoutMs))) do
  if cancelFor(KEY_callers, id, ARG_callerLeftEvent) then cancelled = cancelled + 1 end
end
for _, id in ipairs(due(KEY_running, now)) do
  local jobKey = ARG_jobPrefix .. id
  local j = redis.call('HMGET', jobKey, 'state', 'hasOutput')
  if j[1] ~= 'running' then
    redis.call('ZREM', KEY_running, id)
  elseif j[2] == '1' then
    local eventsKey = ARG_eventsPrefix .. id
    addEntry(jobKey, eventsKey, '[' .. ARG_workerLostEvent .. ']', 'failed')
    finishJob(id, jobKey, eventsKey, 'failed', now, false)
    failed = failed + 1
    touch('ended', id)
  else
    local lane = requeueJob(id, jobKey, now)
    requeued = requeued + 1
    touch('requeued', id, lane)
  end
end
-- Ten batches of finished jobs per call: deleting one is two DELs, and after a burst of traffic (10K jobs) a sweep
-- of 200 per call was 50 billed commands.
for _, id in ipairs(due(KEY_finished, now - tonumber(ARG_finishedTtlMs), batch * 10)) do
  redis.call('DEL', ARG_jobPrefix .. id, ARG_eventsPrefix .. id)
  redis.call('ZREM', KEY_finished, id)
end
for _, workerId in ipairs(due(KEY_workers, now - tonumber(ARG_workerTtlMs))) do
  local conversationsKey = ARG_workerConversationsPrefix .. workerId
  for _, conv in ipairs(redis.call('SMEMBERS', conversationsKey)) do
    if redis.call('HGET', KEY_conversationHolders, conv) == workerId then
      redis.call('HDEL', KEY_conversationHolders, conv)
    end
  end
  redis.call('DEL', ARG_workerPrefix .. workerId, conversationsKey)
  redis.call('ZREM', KEY_workers, workerId)
end

if more == 0 then
  redis.call('DEL', KEY_lock)
  -- A lane holding jobs with no wake token: a token was taken by a poll that never claimed (its worker left, or its
  -- reply was lost). Parked workers are woken again, so a lost token delays a job by one sweep at most.
  for _, lane in ipairs(redis.call('SMEMBERS', KEY_lanes)) do
    if redis.call('LLEN', ARG_lanePrefix .. lane) > 0 and redis.call('EXISTS', ARG_wakePrefix .. lane) == 0 then
      wakeLane(lane)
    end
  end
end
local live = redis.call('ZCARD', KEY_deadlines) + redis.call('ZCARD', KEY_running)
return {'ok', requeued, failed, cancelled, timedOut, more, touched, live}
`,
});
