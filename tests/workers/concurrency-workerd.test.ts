/**
 * Acceptance: the router under real workerd on the Upstash store (bridge + real redis-server) holds 64 streaming and
 * 64 non-streaming requests at once against real long-polling workers — every answer complete, exactly once, none
 * cancelled by workerd ("Worker's code had hung"), no explicit error.
 */
import { assertLoadHolds } from "./concurrency.ts";

Deno.test(
  { name: "workerd + Upstash: 64 streams and 64 non-streaming requests all complete, exactly once" },
  () =>
    assertLoadHolds({
      streams: Number(Deno.env.get("AUXOT_TEST_STREAMS") ?? 64),
      nonStreams: Number(Deno.env.get("AUXOT_TEST_NON_STREAMS") ?? 64),
      words: 20,
      tokenDelayMs: 10,
      workers: 4,
      slotsPerWorker: 32,
      deadlineMs: 90_000,
      durationMs: Number(Deno.env.get("AUXOT_TEST_DURATION_MS") ?? 10_000),
    }),
);
