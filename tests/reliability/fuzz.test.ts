/**
 * Hostile input, short version for CI: fast-check fuzzing of the OpenAI, Anthropic, tools and worker endpoints
 * (tests/reliability/fuzz.ts) against an in-process router with a worker: no 5xx, every error in the API's own
 * shape; afterwards the router has logged no unexpected error and still serves. AUXOT_FUZZ_RUNS sets the runs per
 * endpoint and kind (default 60); `deno task reliability` runs 1,000.
 */
import assert from "node:assert/strict";
import { runFuzz } from "./fuzz.ts";

const RUNS = Number(Deno.env.get("AUXOT_FUZZ_RUNS") ?? 60);

Deno.test({
  name: "reliability: fuzzed OpenAI, Anthropic, tools and worker requests get 4xx in the API's shape, never a 5xx",
  // fetch keeps pooled connections to the in-process router between requests; the router closes before the end.
  sanitizeResources: false,
  fn: async () => {
    const f = await runFuzz(RUNS);
    for (const s of f.stats) {
      console.log(`${s.endpoint}: ${s.requests} requests, statuses ${JSON.stringify(s.byStatus)}`);
    }
    assert.deepEqual(f.unexpectedErrors, [], "the router logged unexpected errors");
    assert.ok(f.stillServes, "the router no longer serves after the fuzz");
  },
});
