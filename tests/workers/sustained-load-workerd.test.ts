/**
 * Regression: the router under real workerd on the Upstash store, under sustained load — 64 callers sending one
 * non-streaming request after another for 40 s against real long-polling workers. Every answer complete, none
 * refused, no workerd log line about a hung request or I/O on behalf of a different request.
 *
 * Before, the store let a worker's post wake the caller waiting in the same isolate by settling that caller's promise
 * (workerd runs such a continuation in the caller's request). That held at low concurrency and for the 10 s of
 * concurrency-workerd.test.ts, but after 10–20K requests at 64 callers workerd began to answer EVERY chat request with a
 * 500 ("Cannot perform I/O on behalf of a different request", I/O type ReadableStreamSource) until restarted. Now no
 * request settles a promise another request awaits under workerd (docs/store.md, "Who owns a wait").
 */
import { assertLoadHolds } from "./concurrency.ts";

Deno.test(
  { name: "workerd + Upstash: 64 callers for 40 s of back-to-back requests, every answer complete" },
  () =>
    assertLoadHolds({
      streams: 0,
      nonStreams: 64,
      words: 4,
      tokenDelayMs: 0,
      workers: 2,
      slotsPerWorker: 64,
      deadlineMs: 60_000,
      durationMs: Number(Deno.env.get("AUXOT_TEST_DURATION_MS") ?? 40_000),
    }),
);
