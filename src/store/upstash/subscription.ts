/**
 * A caller's subscription to its job's batch channel: every batch the append script stores it also PUBLISHes
 * (lua/helpers.ts, ADD_ENTRY), so a caller whose batches are posted through other isolates gets them all for one
 * SUBSCRIBE (a billed command) instead of one XREAD each. Used where in-process wake-ups are off (Workers); see
 * reads.ts for when it is opened and how its gaps are filled, and docs/store.md ("A caller's subscription").
 *
 * Pub/sub keeps no history, so the subscription only ever adds to what XREAD gives: each message names the entry
 * before it (`prev|id|state|events`), a reader takes the messages that continue from its cursor, and anything else —
 * a message that does not chain (one sent before the subscription was live), or one whose events were too large to
 * publish — is a gap that one XREAD fills. A subscription that hears nothing for a while has its reader check the
 * stream (`checkAt`): 1 s after Redis confirmed it (the catch-up: its batches may all have come before), then 3 s after
 * its last message at doubling gaps (a batch found then means its messages are being lost).
 *
 * The subscription belongs to ONE reader (an object living as long as the request that reads, `owner`): it is that
 * request's open fetch, read only by that request and only while it waits, on its own timer (docs/store.md, "Who
 * owns a wait"). Nothing here runs in the background.
 */
import type { JobEvent } from "../../protocol/events.ts";
import type { JobState } from "../store.ts";
import { asState, type Entry, eventBatch } from "./replies.ts";
import type { UpstashRest } from "./rest.ts";

/** Messages kept unread at most (a reader that stopped reading loses the oldest, then fills the gap by XREAD). */
const BUFFERED_MAX = 256;
/** Nothing heard this long after Redis confirmed the subscription: check the stream once (its job's batches may all
 * have been published before it was live). Longer than a started job takes to post (progress every second). */
const CATCH_UP_MS = 1_000;
/** Nothing heard this long after the last message: check the stream (a running job posts every second, so a
 * subscription that hears nothing while the stream grows has lost its messages); then at doubling gaps. */
const QUIET_FIRST_MS = 3_000;
const QUIET_MAX_MS = 30_000;

/** A published batch; `events` is null when it was too large to publish (read it by XREAD). */
interface Published {
  prevId: string;
  id: string;
  state: JobState;
  events: JobEvent[] | null;
}

type Taken =
  | { kind: "entries"; entries: Entry[] }
  /** Something after the cursor came that does not continue from it, or came without its events: XREAD. */
  | { kind: "gap" }
  | { kind: "none" };

export class JobSubscription {
  readonly owner: object;
  readonly #controller: AbortController;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #text = "";
  #buffered: Published[] = [];
  #confirmedAt = Number.NaN;
  #ended = false;
  /** When (performance.now()) the reader should next check the stream for what this has not delivered; NaN until
   * confirmed. Moved on by every message; see CATCH_UP_MS and QUIET_FIRST_MS. */
  #checkAt = Number.NaN;
  #quietGapMs = QUIET_FIRST_MS;
  /** When it was opened (performance.now()). */
  readonly openedAt = performance.now();
  /**
   * Every batch after the reader's cursor arrives here: a message continuing its cursor came, or the stream was
   * checked after the subscription was confirmed. A check that then finds a batch means messages were lost.
   */
  synced = false;

  private constructor(owner: object, controller: AbortController, body: ReadableStream<Uint8Array>) {
    this.owner = owner;
    this.#controller = controller;
    this.#reader = body.getReader();
  }

  /** Opens the subscription (one SUBSCRIBE); it ends when `signal` aborts, `close` is called or the service ends it. */
  static async open(rest: UpstashRest, channel: string, owner: object, signal: AbortSignal): Promise<JobSubscription> {
    const controller = new AbortController();
    const forward = () => controller.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener("abort", forward, { once: true });
    try {
      const res = await rest.subscribe(channel, controller.signal);
      return new JobSubscription(owner, controller, res.body!);
    } catch (err) {
      signal.removeEventListener("abort", forward);
      throw err;
    }
  }

  /** Redis confirmed the subscription: every message published from then on arrives. */
  get confirmed(): boolean {
    return !Number.isNaN(this.#confirmedAt);
  }

  /** When (performance.now()) the reader should check the stream (NaN until confirmed): see `#checkAt`. */
  get checkAt(): number {
    return this.#checkAt;
  }

  /** A check of the stream found nothing new: the next one after a doubled gap. */
  checked(): void {
    this.#checkAt = performance.now() + this.#quietGapMs;
    this.#quietGapMs = Math.min(this.#quietGapMs * 2, QUIET_MAX_MS);
  }

  /** Messages already read another way (an XREAD that found the stream gone) are dropped. */
  dropBuffered(): void {
    this.#buffered = [];
  }

  /** The stream ended (closed, aborted, or ended by the service): nothing more will arrive. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The published batches that continue from `cursor`. Messages at or before the cursor (already read, e.g. by an
   * XREAD that filled a gap) are dropped.
   */
  take(cursor: string): Taken {
    this.#buffered = this.#buffered.filter((m) => compareIds(m.id, cursor) > 0);
    if (this.#buffered.length === 0) return { kind: "none" };
    const entries: Entry[] = [];
    let at = cursor;
    while (this.#buffered.length > 0 && this.#buffered[0].prevId === at && this.#buffered[0].events !== null) {
      const message = this.#buffered.shift()!;
      entries.push({ prevId: message.prevId, id: message.id, state: message.state, events: message.events! });
      at = message.id;
    }
    return entries.length > 0 ? { kind: "entries", entries } : { kind: "gap" };
  }

  /**
   * Waits (on the caller's timer) until Redis confirms the subscription, at most until `until`; true once confirmed.
   * For a subscription opened before its job exists (reads.ts, `watch`): confirmed, it will hear every batch of the
   * job, so there is nothing to catch up on and the first check of the stream waits for the quiet gap.
   */
  async confirmBeforeJob(until: number): Promise<boolean> {
    while (!this.confirmed && !this.#ended && performance.now() < until) await this.receive(until);
    if (!this.confirmed) return false;
    this.synced = true;
    this.#checkAt = this.#confirmedAt + QUIET_FIRST_MS;
    return true;
  }

  /**
   * Waits for the next chunk of the stream until `until` (performance.now()), on the caller's own timer; true when
   * something arrived (or the stream ended), false when the time ran out.
   */
  async receive(until: number): Promise<boolean> {
    if (this.#ended) return true;
    const left = until - performance.now();
    if (left <= 0) return false;
    this.#pending ??= this.#reader.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), left));
    let chunk: ReadableStreamReadResult<Uint8Array> | null;
    try {
      chunk = await Promise.race([this.#pending, timeout]);
    } catch {
      chunk = { done: true, value: undefined };
    } finally {
      clearTimeout(timer);
    }
    if (chunk === null) return false;
    this.#pending = undefined;
    if (chunk.done) {
      this.#ended = true;
      return true;
    }
    this.#parse(this.#decoder.decode(chunk.value, { stream: true }));
    return true;
  }

  close(): void {
    this.#ended = true;
    this.#controller.abort();
    this.#reader.cancel().catch(() => {});
  }

  /** Server-Sent Events lines: `data: subscribe,<channel>,<n>` and `data: message,<channel>,<payload>`. */
  #parse(text: string): void {
    const lines = (this.#text + text).split("\n");
    this.#text = lines.pop() ?? "";
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (!line.startsWith("data:")) continue;
      const data = line.slice(line.startsWith("data: ") ? 6 : 5);
      const kindEnd = data.indexOf(",");
      const channelEnd = data.indexOf(",", kindEnd + 1);
      if (kindEnd < 0 || channelEnd < 0) continue;
      const kind = data.slice(0, kindEnd);
      if (kind === "subscribe") {
        if (!this.confirmed) {
          this.#confirmedAt = performance.now();
          this.#checkAt = this.#confirmedAt + CATCH_UP_MS;
        }
      } else if (kind === "message") {
        const message = parsePublished(data.slice(channelEnd + 1));
        if (message) this.#buffered.push(message);
        if (this.#buffered.length > BUFFERED_MAX) this.#buffered.shift();
        this.#quietGapMs = QUIET_FIRST_MS;
        this.#checkAt = performance.now() + QUIET_FIRST_MS;
      }
    }
  }
}

/** `prev|id|state|events` as the append script publishes it; null for anything else. */
function parsePublished(payload: string): Published | null {
  const a = payload.indexOf("|");
  const b = payload.indexOf("|", a + 1);
  const c = payload.indexOf("|", b + 1);
  if (a < 0 || b < 0 || c < 0) return null;
  const eventsJson = payload.slice(c + 1);
  let events: JobEvent[] | null = null;
  if (eventsJson !== "") {
    try {
      events = eventBatch(eventsJson);
    } catch {
      events = null; // unreadable: read it by XREAD
    }
  }
  try {
    return {
      prevId: payload.slice(0, a),
      id: payload.slice(a + 1, b),
      state: asState(payload.slice(b + 1, c)),
      events,
    };
  } catch {
    return null;
  }
}

/** Orders Redis stream ids (`<ms>-<seq>`); '' (no entry yet) comes first. */
function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "") return -1;
  if (b === "") return 1;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am !== bm ? am - bm : as - bs;
}
