/**
 * The batches of each job stored through this store instance, kept briefly in memory so that a reader on the same
 * instance gets them without a Redis command. Bounded: RECENT_JOBS jobs (least recently written dropped first),
 * RECENT_ENTRIES batches per job.
 */
import type { ReadResult } from "../store.ts";
import { type Entry, toRead } from "./replies.ts";

const RECENT_JOBS = 1_000;
const RECENT_ENTRIES = 64;

export class RecentBatches {
  readonly #jobs = new Map<string, Entry[]>();

  add(jobId: string, entry: Entry): void {
    const entries = this.#jobs.get(jobId) ?? [];
    this.#jobs.delete(jobId); // re-inserted last: the map's order is least recently written first
    entries.push(entry);
    if (entries.length > RECENT_ENTRIES) entries.shift();
    this.#jobs.set(jobId, entries);
    if (this.#jobs.size > RECENT_JOBS) this.#jobs.delete(this.#jobs.keys().next().value!);
  }

  /** True while this job's batches are being written through this instance. */
  has(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  delete(jobId: string): void {
    this.#jobs.delete(jobId);
  }

  /** The batches that continue from `cursor`, if this instance holds them (null otherwise: read Redis). */
  after(jobId: string, cursor: string): ReadResult | null {
    const entries = this.#jobs.get(jobId);
    if (!entries) return null;
    const chain: Entry[] = [];
    let at = cursor;
    for (let next = entries.find((e) => e.prevId === at); next; next = entries.find((e) => e.prevId === at)) {
      chain.push(next);
      at = next.id;
    }
    return chain.length > 0 ? toRead(chain) : null;
  }
}
