/**
 * Lua step `fleet`: a read-only snapshot for /metrics and the admin view.
 *
 * KEYS  workers, lanes, running
 * ARGV  now, workerTtlMs, jobPrefix, workerPrefix, lanePrefix
 * Returns {workers, queued, runningCount, active}: workers = {{id, infoJson, lastSeenAt}, ...} seen within
 *   workerTtlMs; queued = {{lane, length}, ...} for non-empty lanes; active = flat {workerId, runningJobs, ...}.
 * Side effects: none.
 */
import { defineScript } from "./runner.ts";

export const fleetScript = defineScript({
  name: "fleet",
  keys: ["workers", "lanes", "running"],
  args: ["now", "workerTtlMs", "jobPrefix", "workerPrefix", "lanePrefix"],
  body: `
local now = tonumber(ARG_now)
local seen = redis.call('ZRANGEBYSCORE', KEY_workers, '(' .. (now - tonumber(ARG_workerTtlMs)), '+inf', 'WITHSCORES')
local workers = {}
for i = 1, #seen, 2 do
  local info = redis.call('HGET', ARG_workerPrefix .. seen[i], 'info')
  if info then workers[#workers + 1] = {seen[i], info, tonumber(seen[i + 1])} end
end
local queued = {}
for _, lane in ipairs(redis.call('SMEMBERS', KEY_lanes)) do
  local length = redis.call('LLEN', ARG_lanePrefix .. lane)
  if length > 0 then queued[#queued + 1] = {lane, length} end
end
local perWorker = {}
local running = redis.call('ZRANGE', KEY_running, 0, -1)
for _, id in ipairs(running) do
  local worker = redis.call('HGET', ARG_jobPrefix .. id, 'worker')
  if worker then perWorker[worker] = (perWorker[worker] or 0) + 1 end
end
local active = {}
for worker, count in pairs(perWorker) do
  active[#active + 1] = worker
  active[#active + 1] = count
end
return {workers, queued, #running, active}
`,
});
