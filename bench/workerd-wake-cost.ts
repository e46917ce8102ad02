/**
 * What one wake-up of a waiting request costs workerd, in CPU of all its threads (/proc/<pid>/task/*\/schedstat,
 * as the bench's workerd CPU section counts it): a timer that ends a wait, against a subrequest (one fetch to a
 * local server and its reply), for requests alone and 16 at once. It is why a caller on Workers waits for its job's
 * batches with one blocking XREAD each rather than by looking in memory on a timer (docs/store.md, "Who owns a
 * wait"): each look is a wake-up that costs about as much as the XREAD's whole fetch.
 *
 *   deno run -A bench/workerd-wake-cost.ts [--requests 20]
 */
import { parseArgs } from "node:util";
import { findPid, threadCpuMs } from "./lib/proc-stats.ts";
import { startWorkerd } from "../tests/fixtures/workerd.ts";

const { values } = parseArgs({ args: Deno.args, options: { requests: { type: "string", default: "20" } } });
const requests = Number(values.requests);
const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("x"));
const worker = await startWorkerd({
  entry: new URL("./lib/wake-cost-entry.ts", import.meta.url).pathname,
  bindings: { TARGET: `http://127.0.0.1:${target.addr.port}` },
});
const pid = findPid(`--socket-addr=http=127.0.0.1:${new URL(worker.url).port}`);
if (pid === undefined) throw new Error("workerd's process was not found in /proc");

const cases = [
  { label: "timer of 1 ms", query: "timers=100&ms=1", per: 100 },
  { label: "timer of 10 ms", query: "timers=50&ms=10", per: 50 },
  { label: "fetch (subrequest)", query: "fetches=100", per: 100 },
];
const rows: string[][] = [];
const base = await measure("", 1);
for (const { label, query, per } of cases) {
  for (const concurrent of [1, 16]) {
    const cpuMs = await measure(query, concurrent);
    const baseMs = concurrent === 1 ? base : await measure("", concurrent);
    rows.push([label, String(concurrent), `${((cpuMs - baseMs) / per * 1000).toFixed(0)} µs`]);
  }
}
console.log(`workerd CPU per wake-up (all threads; a request alone costs ${(base * 1000).toFixed(0)} µs)\n`);
console.log("| Wake-up | Requests at once | CPU per wake-up |\n| --- | --- | --- |");
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
await worker.stop();
await target.shutdown();

/** workerd CPU (ms) per request of `query`, `concurrent` at a time. */
async function measure(query: string, concurrent: number): Promise<number> {
  const total = requests * concurrent;
  let sent = 0;
  const from = threadCpuMs(pid!);
  await Promise.all(Array.from({ length: concurrent }, async () => {
    while (sent++ < total) await (await fetch(`${worker.url}/?${query}`)).text();
  }));
  return (threadCpuMs(pid!) - from) / total;
}
