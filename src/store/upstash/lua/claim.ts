/**
 * Lua step `claim`: one worker poll — heartbeat, lease extension of its running jobs, cancellations to report, and
 * up to `max` jobs handed out (FIFO per lane, with prompt-cache affinity).
 *
 * KEYS  worker (worker:{id}), workers, workerConversations (worker-conversations:{id}), conversationHolders,
 *       running, queueDeadlines, lanes, claimReply (claim-reply:{id}), handoff (handoff:{id})
 * ARGV  workerId, info (WorkerInfo JSON), free, now, leaseMs, workerTtlMs, affinityWaitMs, max, jobPrefix,
 *       lanePrefix, affinityPrefix, wakePrefix, workerPrefix, workerConversationsPrefix, activeCount, laneCount,
 *       conversationCount, claimId (unique per claim call), wakeCap, wakeTtlMs, postsProgress (1|0), parkedPrefix,
 *       parkMs, handoffPrefix, parks (1|0: the poll waits for jobs when it gets none; only such a worker is
 *       parked); then (variadic) the active job ids, the lanes served, the conversation keys cached
 * Repeatable: a claim that handed out jobs keeps its reply under claim-reply:{id} (20 s at most, until the worker's
 *   next claim); a retry of the
 *   same call (same claimId) whose reply was lost gets the same jobs again instead of leaving them leased to no one.
 * Returns {cancelled, taken, heldUntil, remaining}: cancelled = active ids no longer running for this worker; taken =
 *   {{id, payloadJson, attempt, deadlineAt}, ...}; heldUntil = earliest time a job skipped for affinity becomes
 *   free for anyone (0 = none skipped); remaining = jobs left queued in the lanes served (0: nothing left to claim
 *   now, so the worker's next poll may wait before claiming).
 * Side effects: worker:{id} {info, seen, free, lanes, postsProgress, parks} and workers[id] = now (TTL
 *   workerTtlMs); jobs an enqueue handed to it that its poll has not taken (handoff:{id}, still leased to it) are
 *   taken first (beyond `max`, put back at the head of their lane); the worker is unparked from the lanes it served
 *   before and, when its poll waits (parks = 1), keeps a free slot and its lanes hold nothing to claim, parked on
 *   them (enqueue.ts hands it the next job); the worker's conversation set and conversation-holders entries
 *   replaced (the conversations advertised plus those of its jobs still leased); running[id] = now + leaseMs for
 *   its live jobs; a cancelled job whose worker hears of it here is released (worker field removed); each taken
 *   job: out of its lane, affinity and queue-deadline indexes, state running, worker set, next = 0, claimedAt = now
 *   (only for a worker that postsProgress), leased, and its conversation (if any) added to the worker's set and
 *   recorded as held by it (claim-time holder record); a lane left empty is dropped from `lanes` with its wake
 *   tokens; a lane that still holds jobs after this claim gets a wake token, so a parked worker whose wake-up this
 *   claim consumed is not left sleeping.
 * Affinity: jobs of conversations this worker holds go first; a job whose conversation another live worker with
 *   a free slot holds is skipped until enqueuedAt + affinityWaitMs.
 */
import { DROP_HANDOFF, HOLDER_CAN_TAKE, PARK_WORKER, REQUEUE_JOB, WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const claimScript = defineScript({
  name: "claim",
  keys: [
    "worker",
    "workers",
    "workerConversations",
    "conversationHolders",
    "running",
    "queueDeadlines",
    "lanes",
    "claimReply",
    "handoff",
  ],
  args: [
    "workerId",
    "info",
    "free",
    "now",
    "leaseMs",
    "workerTtlMs",
    "affinityWaitMs",
    "max",
    "jobPrefix",
    "lanePrefix",
    "affinityPrefix",
    "wakePrefix",
    "workerPrefix",
    "workerConversationsPrefix",
    "activeCount",
    "laneCount",
    "conversationCount",
    "claimId",
    "wakeCap",
    "wakeTtlMs",
    "postsProgress",
    "parkedPrefix",
    "parkMs",
    "handoffPrefix",
    "parks",
  ],
  helpers: [WAKE_LANE, PARK_WORKER, DROP_HANDOFF, REQUEUE_JOB, HOLDER_CAN_TAKE],
  body: `
local prior = redis.call('GET', KEY_claimReply)
if prior then
  if string.sub(prior, 1, #ARG_claimId + 1) == ARG_claimId .. '|' then
    return cjson.decode(string.sub(prior, #ARG_claimId + 2))
  end
  -- a new claim of this worker: the reply kept for a retry of the previous one is no longer needed
  redis.call('DEL', KEY_claimReply)
end

local now = tonumber(ARG_now)
local leaseUntil = now + tonumber(ARG_leaseMs)
local workerTtl = tonumber(ARG_workerTtlMs)
local affinityWait = tonumber(ARG_affinityWaitMs)
local max = tonumber(ARG_max)

local i = NAMED_ARGS
local function list(count)
  local items = {}
  for n = 1, tonumber(count) do items[n] = ARGV[i + n] end
  i = i + tonumber(count)
  return items
end
local active = list(ARG_activeCount)
local lanes = list(ARG_laneCount)
local advertised = list(ARG_conversationCount)

-- heartbeat (the lanes it served before: it is unparked from them below)
local previousLanes = cjson.decode(redis.call('HGET', KEY_worker, 'lanes') or '[]')
redis.call('HSET', KEY_worker, 'info', ARG_info, 'seen', now, 'free', ARG_free, 'lanes', cjson.encode(lanes),
  'postsProgress', ARG_postsProgress, 'parks', ARG_parks)
redis.call('PEXPIRE', KEY_worker, workerTtl)
redis.call('ZADD', KEY_workers, now, ARG_workerId)
redis.call('PEXPIRE', KEY_workers, workerTtl)

-- leases of the jobs it runs; cancellations it must hear of
local cancelled = {}
local leasedConvs = {}
for _, id in ipairs(active) do
  local jobKey = ARG_jobPrefix .. id
  local j = redis.call('HMGET', jobKey, 'state', 'worker', 'conv')
  if j[1] == 'running' and j[2] == ARG_workerId then
    redis.call('ZADD', KEY_running, leaseUntil, id)
    if j[3] and j[3] ~= '' then leasedConvs[#leasedConvs + 1] = j[3] end
  else
    cancelled[#cancelled + 1] = id
    if j[1] == 'cancelled' and j[2] == ARG_workerId then redis.call('HDEL', jobKey, 'worker') end
  end
end

-- The conversations this worker holds (prompt-cache affinity): those it advertises, plus those of the jobs still
-- leased to it. A claim records the claimed job's conversation at once (see take): the worker advertises a
-- conversation only once its slot is free again, on its first poll after the job ended, and by then the caller
-- may have sent the next request, which another worker's parked poll would take. A poll made while the job still
-- runs (a heartbeat, a claim for another slot) advertises a set without it; keeping the conversations of its
-- leased jobs keeps the claim-time record until the worker can advertise it (or, its cache gone, no longer does).
local convs = {}
local mine = {}
local function hold(conv)
  if not mine[conv] then
    mine[conv] = true
    convs[#convs + 1] = conv
  end
end
for _, conv in ipairs(advertised) do hold(conv) end
for _, conv in ipairs(leasedConvs) do hold(conv) end
for _, conv in ipairs(redis.call('SMEMBERS', KEY_workerConversations)) do
  if not mine[conv] and redis.call('HGET', KEY_conversationHolders, conv) == ARG_workerId then
    redis.call('HDEL', KEY_conversationHolders, conv)
  end
end
redis.call('DEL', KEY_workerConversations)
if #convs > 0 then
  redis.call('SADD', KEY_workerConversations, unpack(convs))
  redis.call('PEXPIRE', KEY_workerConversations, workerTtl)
  for _, conv in ipairs(convs) do redis.call('HSET', KEY_conversationHolders, conv, ARG_workerId) end
  redis.call('PEXPIRE', KEY_conversationHolders, workerTtl)
end

-- hand out jobs
local taken = {}
local heldUntil = 0
local remaining = 0

-- jobs an enqueue handed to this worker (enqueue.ts) that its poll's BLPOP has not taken: already leased to it
for _, element in ipairs(redis.call('LRANGE', KEY_handoff, 0, -1)) do
  local row = cjson.decode(element)
  local jobKey = ARG_jobPrefix .. row[1]
  local j = redis.call('HMGET', jobKey, 'state', 'worker', 'handoff')
  if j[1] == 'running' and j[2] == ARG_workerId and j[3] == element then
    if #taken < max then
      redis.call('HDEL', jobKey, 'handoff')
      redis.call('ZADD', KEY_running, leaseUntil, row[1])
      taken[#taken + 1] = row
    else
      -- no slot for it any more (a worker stopping polls with none): back to the head of its lane, for anyone
      requeueJob(row[1], jobKey, now)
    end
  end
end
redis.call('DEL', KEY_handoff)

local function take(lane, id)
  redis.call('LREM', ARG_lanePrefix .. lane, 1, id)
  local jobKey = ARG_jobPrefix .. id
  redis.call('HSET', jobKey, 'state', 'running', 'worker', ARG_workerId, 'next', 0)
  if ARG_postsProgress == '1' then
    redis.call('HSET', jobKey, 'claimedAt', now)
  else
    redis.call('HDEL', jobKey, 'claimedAt')
  end
  redis.call('ZADD', KEY_running, leaseUntil, id)
  redis.call('ZREM', KEY_queueDeadlines, id)
  redis.call('ZREM', ARG_affinityPrefix .. lane, id)
  local j = redis.call('HMGET', jobKey, 'payload', 'attempt', 'deadlineAt', 'conv')
  taken[#taken + 1] = {id, j[1], tonumber(j[2]), tonumber(j[3])}
  -- claim-time holder record: the worker now holds the job's conversation, as if it had advertised it
  local conv = j[4]
  if conv and conv ~= '' then
    hold(conv)
    redis.call('SADD', KEY_workerConversations, conv)
    redis.call('PEXPIRE', KEY_workerConversations, workerTtl)
    redis.call('HSET', KEY_conversationHolders, conv, ARG_workerId)
    redis.call('PEXPIRE', KEY_conversationHolders, workerTtl)
  end
end

-- true while another live worker with a free slot caches the job's conversation and the window is open
local function heldElsewhere(conv, enqueuedAt)
  if not conv or conv == '' or enqueuedAt + affinityWait <= now then return false end
  local holder = redis.call('HGET', KEY_conversationHolders, conv)
  if not holder or holder == ARG_workerId then return false end
  return holderCanTake(holder, conv, now)
end

for _, lane in ipairs(lanes) do
  if #taken >= max then break end
  local laneKey = ARG_lanePrefix .. lane
  local affinityKey = ARG_affinityPrefix .. lane
  if #convs > 0 then
    for _, id in ipairs(redis.call('ZRANGE', affinityKey, 0, -1)) do
      if #taken >= max then break end
      if mine[redis.call('HGET', ARG_jobPrefix .. id, 'conv')] then take(lane, id) end
    end
  end
  local skipped = 0
  while #taken < max do
    local ids = redis.call('LRANGE', laneKey, skipped, skipped + (max - #taken) - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local held = false
      if redis.call('ZSCORE', affinityKey, id) then
        local j = redis.call('HMGET', ARG_jobPrefix .. id, 'conv', 'enqueuedAt')
        local enqueuedAt = tonumber(j[2]) or 0
        if heldElsewhere(j[1], enqueuedAt) then
          held = true
          skipped = skipped + 1
          local freeAt = enqueuedAt + affinityWait
          if heldUntil == 0 or freeAt < heldUntil then heldUntil = freeAt end
        end
      end
      if not held then take(lane, id) end
    end
  end
  local left = redis.call('LLEN', laneKey)
  remaining = remaining + left
  if left == 0 then
    redis.call('SREM', KEY_lanes, lane)
    redis.call('DEL', ARG_wakePrefix .. lane)
  elseif #taken > 0 then
    wakeLane(lane)
  end
end

-- A free slot left and nothing to claim: parked, so the next enqueue hands it the job without a claim.
unparkWorker(ARG_workerId, previousLanes)
if ARG_parks == '1' and #taken < max and remaining == 0 and heldUntil == 0 then parkWorker(ARG_workerId, lanes, now) end

if #taken > 0 then
  local replyTtl = math.min(tonumber(ARG_workerTtlMs), 20000)
  redis.call('SET', KEY_claimReply, ARG_claimId .. '|' .. cjson.encode({cancelled, taken, heldUntil, remaining}), 'PX', replyTtl)
end
return {cancelled, taken, heldUntil, remaining}
`,
});
