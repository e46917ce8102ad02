/**
 * Validation of a worker's events post (`EventsRequest`) with a fast path for the per-token events. zod builds a new
 * object and a parse context for every field of every event: for a text token of a few bytes that was ~400 bytes of
 * garbage, on the path that runs once per token (the rule is that nothing per token allocates more than it sends).
 *
 * The fast path only ever ACCEPTS, and only what zod would accept unchanged: a body with exactly the protocol's
 * fields, and text/reasoning events whose keys are exactly `type, text[, tokens]` (tool_args: `type, index, delta`) in
 * that order (zod's output order, so the stored event equals the one zod would have built, byte for byte once
 * serialised). Other events go
 * through zod one by one. Anything the fast path is not sure of — an unknown key, a bound, a wrong type — is handed
 * to the full zod parse, so refusals and their messages are zod's, as before.
 */
import { JobEvent } from "../protocol/events.ts";
import type { EventsRequest } from "../protocol/worker-protocol.ts";

type PostedEvent = EventsRequest["events"][number];

const MAX_WORKER_ID = 80;
const MAX_LEASE_TOKEN = 200;
const MAX_EVENTS = 10_000;
const MAX_TOKENS = 100_000;

/** The post as zod would return it, or undefined when only the full zod parse can say (or refuse). */
export function parseEventsPostFast(body: unknown): EventsRequest | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  let fields = 0;
  for (const key in body) {
    if (key !== "workerId" && key !== "leaseToken" && key !== "seq" && key !== "events") return undefined;
    fields++;
  }
  if (fields !== 4) return undefined;
  const { workerId, leaseToken, seq, events } = body as Record<string, unknown>;
  if (typeof workerId !== "string" || workerId.length > MAX_WORKER_ID) return undefined;
  if (typeof leaseToken !== "string" || leaseToken.length > MAX_LEASE_TOKEN) return undefined;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  if (!Array.isArray(events) || events.length > MAX_EVENTS) return undefined;
  const parsed: PostedEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    if (isPlainTokenEvent(event) || isPlainToolArgs(event)) parsed[i] = event;
    else {
      const result = JobEvent.safeParse(event);
      if (!result.success) return undefined;
      parsed[i] = result.data;
    }
  }
  return { workerId, leaseToken, seq, events: parsed };
}

/** `{type: "text" | "reasoning", text, tokens?}` with exactly those keys in that order and valid values. */
function isPlainTokenEvent(event: unknown): event is PostedEvent {
  if (typeof event !== "object" || event === null) return false;
  let index = 0;
  for (const key in event) {
    if (key !== (index === 0 ? "type" : index === 1 ? "text" : index === 2 ? "tokens" : "")) return false;
    index++;
  }
  if (index < 2) return false;
  const { type, text, tokens } = event as { type: unknown; text: unknown; tokens?: unknown };
  if ((type !== "text" && type !== "reasoning") || typeof text !== "string") return false;
  if (index === 2) return true;
  if (!Array.isArray(tokens) || tokens.length > MAX_TOKENS) return false;
  for (const token of tokens) if (typeof token !== "number" || !Number.isSafeInteger(token) || token < 0) return false;
  return true;
}

/** `{type: "tool_args", index, delta}` (a tool call's arguments, streamed per token), exactly those keys in order. */
function isPlainToolArgs(event: unknown): event is PostedEvent {
  if (typeof event !== "object" || event === null) return false;
  let index = 0;
  for (const key in event) {
    if (key !== (index === 0 ? "type" : index === 1 ? "index" : index === 2 ? "delta" : "")) return false;
    index++;
  }
  const e = event as { type: unknown; index: unknown; delta: unknown };
  return index === 3 && e.type === "tool_args" && typeof e.index === "number" && Number.isSafeInteger(e.index) &&
    e.index >= 0 && typeof e.delta === "string";
}
