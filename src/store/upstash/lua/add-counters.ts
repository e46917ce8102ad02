/**
 * Lua step `add_counters`: adds an instance's metric deltas to the fleet-wide sums in one command.
 *
 * KEYS  counters, flushMark (counters-flush:{flushId}), minutes (store commands per minute)
 * ARGV  minute (now in whole minutes), commands (store commands counted since the last flush), minutesTtlMs;
 *       then (variadic) name, delta, name, delta, ...
 * Returns the number of counters updated (0 for a repeated flush).
 * Side effects: HINCRBYFLOAT per counter (sums may be fractional, e.g. cost in USD); `commands` added to the
 *   minute's field of `minutes` (fields older than an hour dropped), which /api/status reads for the last hour.
 * Repeatable: the flush mark (SET NX) makes a retried flush whose first run landed add nothing.
 */
import { defineScript } from "./runner.ts";

export const addCountersScript = defineScript({
  name: "add_counters",
  keys: ["counters", "flushMark", "minutes"],
  args: ["minute", "commands", "minutesTtlMs"],
  body: `
-- repeatable: a retried flush (same flush id, hence same mark key) adds nothing twice
if redis.call('SET', KEY_flushMark, '1', 'NX', 'PX', 120000) == false then return 0 end
if tonumber(ARG_commands) > 0 then
  redis.call('HINCRBY', KEY_minutes, ARG_minute, ARG_commands)
  redis.call('PEXPIRE', KEY_minutes, ARG_minutesTtlMs)
  if redis.call('HLEN', KEY_minutes) > 90 then
    for _, field in ipairs(redis.call('HKEYS', KEY_minutes)) do
      if tonumber(field) < tonumber(ARG_minute) - 60 then redis.call('HDEL', KEY_minutes, field) end
    end
  end
end
local updated = 0
for i = NAMED_ARGS + 1, #ARGV - 1, 2 do
  redis.call('HINCRBYFLOAT', KEY_counters, ARGV[i], ARGV[i + 1])
  updated = updated + 1
end
return updated
`,
});
