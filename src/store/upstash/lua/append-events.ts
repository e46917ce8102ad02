/**
 * Lua step `append_events`: stores a batch of a job's events posted by the worker holding its lease.
 *
 * KEYS  job, events, running, deadlines, queueDeadlines, callers, finished, lanes
 * ARGV  id, workerId, seq (index of the batch's first event in this attempt), now, leaseMs, finishedTtlMs,
 *       flags (one character per event, computed by the store: 'o' output, 'd' done, 'r' retryable error,
 *       'e' other error, '-' anything else), lanePrefix, affinityPrefix, wakePrefix, wakeCap, wakeTtlMs,
 *       handoffPrefix, parkedPrefix, parkMs, workerPrefix; then the events, one JSON text each (variadic)
 * Returns {'unknown_job'} | {'not_leased'} | {'seq_gap', next}
 *       | {'ok', cancelled (0|1), next, acceptedFrom, acceptedCount, prevEntryId, entryId, state, requeuedLane}
 *   acceptedFrom is the 0-based index in the batch of the first stored event; entry ids are '' when none stored;
 *   state is the job's state after the batch ('queued' when it was requeued, then requeuedLane is its lane).
 * Repeatable: events before `next` were stored by an earlier run of this post (its reply lost) and are skipped; a
 *   retried final batch of a job this worker already ended answers ok with nothing stored.
 * Side effects: events before `next` are duplicates of a retried post and skipped; the new ones are stored as ONE
 *   stream entry; the lease is extended (running[id] = now + leaseMs). A retryable error before any output puts
 *   the job back at the head of its lane (attempt + 1, wake token) and is not stored; `done` or an error ends the
 *   job (done | failed, worker released, keys expire after finishedTtlMs), and parks the worker on its lanes when
 *   its polls wait (claim.ts) and they hold no queued job (its slot is free: the next enqueue may hand it a job, enqueue.ts). A cancelled job
 *   stores nothing and answers cancelled = 1.
 */
import { ADD_ENTRY, DROP_HANDOFF, FINISH_JOB, PARK_WORKER, REQUEUE_JOB, WAKE_LANE } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const appendEventsScript = defineScript({
  name: "append_events",
  keys: ["job", "events", "running", "deadlines", "queueDeadlines", "callers", "finished", "lanes"],
  args: [
    "id",
    "workerId",
    "seq",
    "now",
    "leaseMs",
    "finishedTtlMs",
    "flags",
    "lanePrefix",
    "affinityPrefix",
    "wakePrefix",
    "wakeCap",
    "wakeTtlMs",
    "handoffPrefix",
    "parkedPrefix",
    "parkMs",
    "workerPrefix",
  ],
  helpers: [WAKE_LANE, ADD_ENTRY, FINISH_JOB, DROP_HANDOFF, REQUEUE_JOB, PARK_WORKER],
  body: `
local j = redis.call('HMGET', KEY_job, 'state', 'worker', 'next', 'hasOutput')
local state = j[1]
if not state then return {'unknown_job'} end
local total = #ARGV - NAMED_ARGS
if (state == 'done' or state == 'failed') and not j[2]
    and redis.call('HGET', KEY_job, 'lastWorker') == ARG_workerId
    and tonumber(ARG_seq) + total <= tonumber(j[3]) then
  return {'ok', 0, tonumber(j[3]), 0, 0, '', '', state, ''}
end
if j[2] ~= ARG_workerId or (state ~= 'running' and state ~= 'cancelled') then return {'not_leased'} end
local nextSeq = tonumber(j[3])
if state == 'cancelled' then return {'ok', 1, nextSeq, 0, 0, '', '', 'cancelled', ''} end
local seq = tonumber(ARG_seq)
if seq > nextSeq then return {'seq_gap', nextSeq} end
local now = tonumber(ARG_now)
local hasOutput = j[4] == '1'
local from = nextSeq - seq + 1
local accepted = {}
local outcome = 'running'
for i = from, total do
  local flag = string.sub(ARG_flags, i, i)
  nextSeq = nextSeq + 1
  if flag == 'r' and not hasOutput then
    outcome = 'queued'
    break
  end
  accepted[#accepted + 1] = ARGV[NAMED_ARGS + i]
  if flag == 'o' then hasOutput = true end
  if flag == 'd' then
    outcome = 'done'
    break
  end
  if flag == 'e' or flag == 'r' then
    outcome = 'failed'
    break
  end
end
local prev, entry, lane = '', '', ''
if #accepted > 0 then
  prev, entry = addEntry(KEY_job, KEY_events, '[' .. table.concat(accepted, ',') .. ']', outcome)
end
redis.call('HSET', KEY_job, 'next', nextSeq, 'hasOutput', hasOutput and 1 or 0)
if outcome == 'queued' then
  lane = requeueJob(ARG_id, KEY_job, now)
  nextSeq = 0
elseif outcome == 'done' or outcome == 'failed' then
  finishJob(ARG_id, KEY_job, KEY_events, outcome, now, false)
  -- Its slot is free and its poll comes next: with nothing queued for it, it is parked (one hand-off).
  local w = redis.call('HMGET', ARG_workerPrefix .. ARG_workerId, 'lanes', 'parks')
  if w[1] and w[2] == '1' then
    local lanes = cjson.decode(w[1])
    local idle = true
    for _, l in ipairs(lanes) do
      if redis.call('LLEN', ARG_lanePrefix .. l) > 0 then idle = false end
    end
    if idle then parkWorker(ARG_workerId, lanes, now) end
  end
else
  redis.call('ZADD', KEY_running, now + tonumber(ARG_leaseMs), ARG_id)
end
return {'ok', 0, nextSeq, from - 1, #accepted, prev, entry, outcome, lane}
`,
});
