/**
 * Sustained load on the router under workerd (Upstash store through the REST bridge, one GPU worker on the mock
 * engine): rounds of 7 s at N connections, printing requests/s per round, and workerd's last log lines once a round
 * fails or slows to a trickle. It found the defect of cross-request wake-ups (docs/store.md, "Who owns a wait"): with
 * them, at 64 connections, after 20–40 s every request ended in workerd's "Cannot perform I/O on behalf of a different
 * request (I/O type: ReadableStreamSource)"; the bench's throughput section (3 rounds of 7 s) stayed under it. Without
 * them (since 1ff264e) every round holds; tests/workers/sustained-load-workerd.test.ts keeps it so in CI.
 *
 *   deno run -A bench/workerd-soak.ts [--rounds 6] [--connections 64] [--log-file PATH]
 */
import { parseArgs } from "node:util";
import { runThroughput } from "./lib/run-load.ts";
import { stopAll } from "./lib/process.ts";
import { makeKeys, startGpuWorker, startMock, startRedisBridge, startWorkerdRouter, waitForWorkers } from "./stack.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "6" },
    connections: { type: "string", default: "64" },
    "log-file": { type: "string" },
  },
});
const keys = await makeKeys();
const mock = await startMock();
const bridge = await startRedisBridge();
const router = await startWorkerdRouter(keys, bridge);
const worker = startGpuWorker("worker", router.url, keys, ["--llama-url", mock.url, "--slots", "64"]);
await waitForWorkers(router.url, worker, 60_000);
const target = {
  name: "workerd",
  host: "127.0.0.1",
  port: router.port,
  request: {
    method: "POST" as const,
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json", authorization: `Bearer ${keys.api}` },
    body: JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Say hello. tokens=16" }] }),
  },
};
let broken = false;
for (let round = 0; round < Number(values.rounds); round++) {
  const result = await runThroughput({
    targets: [target],
    rounds: 1,
    connections: Number(values.connections),
    warmupMs: 0,
    durationMs: 7_000,
  });
  const window = result.targets[0].rounds[0];
  const rps = Math.round(window.requests / window.seconds);
  console.log(
    JSON.stringify({ round, seconds: (round + 1) * 7, rps, errors: window.errors, firstError: window.firstError }),
  );
  if (window.errors > 0 || rps < 50) broken = true;
}
if (values["log-file"]) await Deno.writeTextFile(values["log-file"], router.logs());
if (broken) console.log(router.logs().slice(-3_000));
await stopAll();
Deno.exit(broken ? 1 : 0);
