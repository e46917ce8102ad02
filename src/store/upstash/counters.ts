/**
 * Fleet-wide sums on the Upstash store: metric counters every router instance adds its deltas to (one script call
 * per flush, safe to repeat), and the store commands counted per minute, for /api/status's cost figures.
 */
import { addCountersScript } from "./lua/add-counters.ts";
import type { UpstashParts } from "./parts.ts";
import { asArray, asString } from "./replies.ts";

/** How long the per-minute command counts are kept (the status page shows the last hour). */
const MINUTES_TTL_MS = 2 * 3_600_000;

export class Counters {
  readonly #parts: UpstashParts;
  /** Of this instance's commands, those already added to the per-minute counts. */
  #commandsBucketed = 0;

  constructor(parts: UpstashParts) {
    this.#parts = parts;
  }

  /** Adds `deltas` to the fleet-wide counters, and this instance's commands since the last call to this minute's. */
  async add(deltas: Record<string, number>): Promise<void> {
    const { rest, scripts, keys, opts } = this.#parts;
    const pairs = Object.entries(deltas).filter(([, delta]) => delta !== 0 && Number.isFinite(delta));
    const commands = rest.commandCount - this.#commandsBucketed;
    if (pairs.length === 0 && commands <= 0) return;
    // The same flush id on every retry of this call: a flush whose reply was lost is not added twice.
    const flushId = crypto.randomUUID();
    await scripts.run(addCountersScript, {
      counters: keys.counters,
      flushMark: keys.countersFlush(flushId),
      minutes: keys.commandMinutes,
    }, {
      minute: Math.floor(opts.now() / 60_000),
      commands: Math.max(0, commands),
      minutesTtlMs: MINUTES_TTL_MS,
    }, pairs.flat());
    this.#commandsBucketed += Math.max(0, commands);
  }

  /**
   * Store commands counted fleet-wide (as flushed by every instance with `add`) in the last `minutes` whole minutes
   * before the current one, plus the current one so far.
   */
  async commandsInLast(minutes: number): Promise<number> {
    const current = Math.floor(this.#parts.opts.now() / 60_000);
    const fields = Array.from({ length: minutes + 1 }, (_, i) => String(current - i));
    const values = asArray(
      await this.#parts.rest.command(["HMGET", this.#parts.keys.commandMinutes, ...fields], { retry: true }),
      "minutes",
    );
    return values.reduce<number>((sum, v) => sum + (v === null ? 0 : Number(v)), 0);
  }

  async read(): Promise<Record<string, number>> {
    const flat = asArray(await this.#parts.rest.command(["HGETALL", this.#parts.keys.counters]), "counters");
    const counters: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) counters[asString(flat[i], "counters")] = Number(flat[i + 1]);
    return counters;
  }
}
