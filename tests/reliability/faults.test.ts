/**
 * The short fault runs for CI: on each store, one bounded load of unique streaming requests while workers are
 * killed with SIGKILL, a worker is frozen past its lease, the router restarts, and (Upstash) the REST bridge and
 * redis-server go away for two seconds. Every request must end completed or with an explicit error; none may hang,
 * repeat output or leak. `deno task reliability` runs the long version (tests/reliability/main.ts).
 */
import { runFaultScenario } from "./faults.ts";
import { assertHealthy } from "./verdict.ts";

for (const store of ["embedded", "upstash"] as const) {
  Deno.test(`reliability: ${store} store: mixed faults under load — nothing hangs, repeats or leaks`, async () => {
    // 80 ms apart: the load lasts long enough for every strike of the store (about 13 s for Upstash's five).
    const requests = store === "upstash" ? 170 : 110;
    const figures = await runFaultScenario({ store, fault: "mixed", requests, concurrency: 12, intervalMs: 80 });
    console.log(
      `${store}: ${figures.requests} requests, ${figures.strikes} strikes: ${JSON.stringify(figures.tally)}, ` +
        `re-queued then completed ${figures.requeuedThenCompleted}`,
    );
    assertHealthy(figures);
    if (figures.strikes < 3) throw new Error(`only ${figures.strikes} strikes landed during the load`);
  });
}
