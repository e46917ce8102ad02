/**
 * Lua step `cancel`: cancels a queued or running job; a finished (or unknown) job is left alone.
 *
 * KEYS  job, events, running, deadlines, queueDeadlines, callers, finished, lanes
 * ARGV  id, event (JSON of the cancel event), now, finishedTtlMs, lanePrefix, affinityPrefix, wakePrefix, handoffPrefix
 * Returns {'ok', prevEntryId, entryId} | {'noop'}
 * Side effects: a queued job leaves its lane (an emptied lane's wake tokens are dropped); the event is appended as one entry (state cancelled); the job is
 *   finished as "cancelled" but keeps its worker, who learns of it on its next poll (claim) or post (append).
 */
import { ADD_ENTRY, CANCEL_JOB, DROP_HANDOFF, FINISH_JOB, REMOVE_QUEUED } from "./helpers.ts";
import { defineScript } from "./runner.ts";

export const cancelScript = defineScript({
  name: "cancel",
  keys: ["job", "events", "running", "deadlines", "queueDeadlines", "callers", "finished", "lanes"],
  args: ["id", "event", "now", "finishedTtlMs", "lanePrefix", "affinityPrefix", "wakePrefix", "handoffPrefix"],
  helpers: [REMOVE_QUEUED, DROP_HANDOFF, ADD_ENTRY, FINISH_JOB, CANCEL_JOB],
  body: `
local prev, entry = cancelJob(ARG_id, KEY_job, KEY_events, ARG_event, tonumber(ARG_now))
if prev == false then return {'noop'} end
return {'ok', prev, entry}
`,
});
