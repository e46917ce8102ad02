/**
 * Lua step `add_counters`: adds an instance's metric deltas to the fleet-wide sums in one command.
 *
 * KEYS  counters
 * ARGV  (variadic) name, delta, name, delta, ...
 * Returns the number of counters updated.
 * Side effects: HINCRBYFLOAT per counter (sums may be fractional, e.g. cost in USD).
 */
import { defineScript } from "./runner.ts";

export const addCountersScript = defineScript({
  name: "add_counters",
  keys: ["counters"],
  args: [],
  body: `
local updated = 0
for i = NAMED_ARGS + 1, #ARGV - 1, 2 do
  redis.call('HINCRBYFLOAT', KEY_counters, ARGV[i], ARGV[i + 1])
  updated = updated + 1
end
return updated
`,
});
