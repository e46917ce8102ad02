/**
 * Decoding what the Upstash store's scripts and stream reads answer (typed checks: a reply of the wrong shape is
 * a bug or a foreign key under our prefix, and fails loudly), and the per-event flags the append script reads.
 */
import { requeueable } from "../shared.ts";
import { isOutput, type JobEvent } from "../../protocol/events.ts";
import type { JobState, ReadResult } from "../store.ts";
import type { RedisValue } from "./rest.ts";

/** One stored batch as a reader sees it; `prevId` chains it to the entry before ('' for the first). */
export interface Entry {
  prevId: string;
  id: string;
  events: JobEvent[];
  state: JobState;
}

/**
 * A stored batch as written by the append script from events the router validated on their way in: only its shape
 * is checked here (re-validating every event with zod on every read cost a streaming caller several ms of CPU).
 */
export function eventBatch(json: string): JobEvent[] {
  const events: unknown = JSON.parse(json);
  if (
    !Array.isArray(events) || !events.every((e) => typeof e === "object" && e !== null && typeof e.type === "string")
  ) {
    throw new Error(`unexpected events batch from Redis: ${json.slice(0, 100)}`);
  }
  return events as JobEvent[];
}

/** One character per event for the append script (it cannot parse JSON portably). */
export function eventFlag(event: JobEvent): string {
  if (isOutput(event)) return "o";
  if (event.type === "done") return "d";
  if (event.type === "error") return requeueable(event) ? "r" : "e";
  return "-";
}

/** XRANGE/XREAD entries → batches, chained from `cursor`. */
export function parseEntries(value: RedisValue, cursor: string): Entry[] {
  const entries: Entry[] = [];
  let prevId = cursor;
  for (const raw of asArray(value, "events")) {
    const [id, fields] = asArray(raw, "events");
    const pairs = asArray(fields, "events");
    let events: JobEvent[] = [];
    let state: JobState = "running";
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      if (pairs[i] === "e") events = eventBatch(asString(pairs[i + 1], "events"));
      if (pairs[i] === "s") state = asState(pairs[i + 1]);
    }
    const entryId = asString(id, "events");
    entries.push({ prevId, id: entryId, events, state });
    prevId = entryId;
  }
  return entries;
}

/** What a caller reads for a job the store does not know (never enqueued, or forgotten after its TTL). */
export function unknownJob(cursor: string): ReadResult {
  return {
    events: [{ type: "error", message: "job not found", retryable: false, code: "unknown_job" }],
    cursor,
    state: "failed",
  };
}

export function toRead(entries: Entry[]): ReadResult {
  const last = entries[entries.length - 1];
  return { events: entries.flatMap((entry) => entry.events), cursor: last.id, state: last.state };
}

const JOB_STATES: ReadonlySet<string> = new Set(["queued", "running", "done", "failed", "cancelled"]);

export function asState(value: RedisValue | undefined): JobState {
  if (typeof value === "string" && JOB_STATES.has(value)) return value as JobState;
  throw new Error(`unexpected job state from Redis: ${JSON.stringify(value)}`);
}

export function asArray(value: RedisValue | undefined, context: string): RedisValue[] {
  if (Array.isArray(value)) return value;
  throw new Error(`unexpected reply from ${context}: expected an array, got ${JSON.stringify(value)}`);
}

export function asString(value: RedisValue | undefined, context: string): string {
  if (typeof value === "string") return value;
  throw new Error(`unexpected reply from ${context}: expected a string, got ${JSON.stringify(value)}`);
}

export function asNumber(value: RedisValue | undefined, context: string): number {
  if (typeof value === "number") return value;
  throw new Error(`unexpected reply from ${context}: expected a number, got ${JSON.stringify(value)}`);
}
