/**
 * The lazy sweeper (src/dispatch/context.ts): at most one sweep at a time and one per interval — and a sweep that
 * never settles (on Workers, its request's waitUntil cut short) does not stop sweeping for good: a minute on, the
 * next request sweeps again.
 */
import assert from "node:assert/strict";
import { createReaper } from "../../src/dispatch/context.ts";
import { createLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import type { ReapResult } from "../../src/store/store.ts";

/** The real store, whose first sweep hangs forever. */
class FirstSweepHangs extends EmbeddedStore {
  sweeps = 0;
  override reap(): Promise<ReapResult> {
    return ++this.sweeps === 1 ? new Promise(() => {}) : super.reap();
  }
}

Deno.test("reaper: one sweep per interval, and a sweep that never settled is retried a minute on", async () => {
  const store = new FirstSweepHangs();
  let clock = 1_000_000;
  const work: Promise<unknown>[] = [];
  const reapSoon = createReaper(store, createLogger("error"), new Metrics(), () => clock, (p) => work.push(p), 10_000);
  reapSoon();
  assert.equal(store.sweeps, 1);
  clock += 30_000;
  reapSoon(); // the first is still "running"
  assert.equal(store.sweeps, 1);
  clock += 31_000;
  reapSoon(); // 61 s on: the hung sweep no longer blocks
  assert.equal(store.sweeps, 2);
  await work[1];
  clock += 1_000;
  reapSoon(); // within the interval
  assert.equal(store.sweeps, 2);
  clock += 10_000;
  reapSoon();
  assert.equal(store.sweeps, 3);
  await work[2];
  await store.close();
});
