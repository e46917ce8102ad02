/**
 * Where a streamed answer's router CPU goes under workerd when its worker posts through another workerd instance (the
 * caller reads every batch through its subscription, as callers on Workers do; before, an XREAD each): the caller's
 * workerd process's CPU per stream (schedstat, ns, all threads; and /proc/<pid>/stat's ticks), its CPU and voluntary context switches per
 * stream by thread (each switch a sleep and a wake-up), and Redis's count of the store's commands per stream (all instances).
 * Optionally records the caller's process with `perf record -g` (--perf FILE; JS frames are unnamed unless workerd
 * runs V8 with --perf-basic-prof) or `strace -f -tt` of its network writes (--strace FILE) while the streams run.
 *
 *   deno run -A bench/profile-workerd-stream.ts [--streams N] [--tokens N] [--same] [--perf FILE] [--strace FILE]
 *
 * Found with it (issue 13): ~3.7 ms fixed per chat request plus ~1.2 ms per batch read (XREAD BLOCK round trip,
 * decode, SSE write); a blocking fetch that waits costs ~0.85 ms of workerd CPU against ~0.3 ms for one answered at
 * once (microbenchmark), so the cost follows batches (and wake-ups), hardly tokens. Per thread (16 streams of 500
 * tokens): the isolate's thread 13.5 ms per stream, V8's helpers 0.8 ms; ~135 system calls per stream (strace -c),
 * and the same JavaScript (20K SSE chunks stringified) takes workerd no longer than Deno: the per-batch cost is
 * workerd's own work per I/O on this machine, not the router's JavaScript. */
import { parseArgs } from "node:util";
import { startWorkersStack } from "../tests/fixtures/workers-stack.ts";
import { startWorker, TEST_ENV, testKeys } from "../tests/helpers/router.ts";
import { ScriptedEngine } from "../tests/helpers/scripted-engine.ts";
import { cpuMs, findPid, threadCpuMs } from "./lib/proc-stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    streams: { type: "string", default: "6" },
    tokens: { type: "string", default: "500" },
    perf: { type: "string" },
    /** Send the streams to the worker's instance (its batches then read from memory). */
    same: { type: "boolean", default: false },
    strace: { type: "string" },
  },
});
const streams = Number(values.streams);

const stack = await startWorkersStack();
const keys = await testKeys();
const env = { ...TEST_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" };
const router = await stack.startRouter(env);
const workerSide = await stack.startRouter(env);
const pid = findPid(`--socket-addr=http=127.0.0.1:${new URL(router.url).port}`)!;
const worker = startWorker(workerSide, new ScriptedEngine({ slots: 2, tokenDelayMs: 10 }), {
  key: keys.admin,
  pollWaitMs: 60_000,
});

/** Voluntary context switches of every thread of the process (each one a sleep and a wake-up), by thread name. */
function wakeups(pid: number): Map<string, number> {
  return byThreadName(pid, (task) => {
    const status = Deno.readTextFileSync(`/proc/${pid}/task/${task}/status`);
    return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)![1]);
  });
}

/** CPU (ms, schedstat) of every thread of the process, by thread name: the isolate's own thread ("workerd", which
 * runs the JavaScript and the event loop) apart from V8's helpers (GC, compiler). */
function threadCpu(pid: number): Map<string, number> {
  return byThreadName(
    pid,
    (task) => Number(Deno.readTextFileSync(`/proc/${pid}/task/${task}/schedstat`).split(" ")[0]) / 1e6,
  );
}

function byThreadName(pid: number, read: (task: string) => number): Map<string, number> {
  const byThread = new Map<string, number>();
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = /^Name:\s+(.+)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/status`))![1];
      byThread.set(name, (byThread.get(name) ?? 0) + read(task.name));
    } catch {
      // the thread ended
    }
  }
  return byThread;
}

async function stream(): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${values.same ? workerSide.url : router.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys.api}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `words ${values.tokens}` }], stream: true }),
  });
  const text = await response.text();
  if (!response.ok || !text.includes(`w${Number(values.tokens) - 1} `)) throw new Error(text.slice(0, 300));
  return performance.now() - started;
}

/** Redis's own count of the TOP_LEVEL commands, by name. */
async function bridgeCommands(): Promise<Map<string, number>> {
  const response = await fetch(`${stack.redisUrl}/`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.redisToken}` },
    body: JSON.stringify(["INFO", "commandstats"]),
  });
  const info = (await response.json()).result as string;
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
    if (TOP_LEVEL.has(match[1])) calls.set(match[1], Number(match[2]));
  }
  return calls;
}

/** Commands the store sends that its scripts never run (INFO counts commands run inside scripts too). */
const TOP_LEVEL = new Set(["evalsha", "eval", "xread", "blpop", "subscribe"]);

try {
  await stream();
  await stream(); // warm: scripts loaded, key verified
  const perf = values.perf
    ? new Deno.Command("perf", {
      args: ["record", "-F", Deno.env.get("PERF_HZ") ?? "10000", "-g", "-p", String(pid), "-o", values.perf],
      stdout: "null",
      stderr: "null",
    }).spawn()
    : undefined;
  const strace = values.strace
    ? new Deno.Command("strace", {
      args: ["-f", "-tt", "-s", "400", "-e", "trace=sendto", "-p", String(pid), "-o", values.strace],
      stdout: "null",
      stderr: "null",
    }).spawn()
    : undefined;
  if (perf || strace) await new Promise((r) => setTimeout(r, 500));
  const commandsBefore = await bridgeCommands();
  const cpuBefore = cpuMs(pid), preciseBefore = threadCpuMs(pid);
  const wakeupsBefore = wakeups(pid), threadCpuBefore = threadCpu(pid);
  let wall = 0;
  for (let i = 0; i < streams; i++) wall += await stream();
  const cpu = cpuMs(pid) - cpuBefore, precise = threadCpuMs(pid) - preciseBefore;
  const wakeupsPerStream = [...wakeups(pid)].map(([name, n]) =>
    `${name} ${((n - (wakeupsBefore.get(name) ?? 0)) / streams).toFixed(1)}`
  );
  const cpuPerStream = [...threadCpu(pid)].map(([name, ms]) =>
    `${name} ${((ms - (threadCpuBefore.get(name) ?? 0)) / streams).toFixed(2)} ms`
  );
  for (const tracer of [perf, strace]) {
    if (!tracer) continue;
    tracer.kill("SIGINT");
    await tracer.status;
  }
  const commandsAfter = await bridgeCommands();
  const commands = [...commandsAfter].map(([name, n]) =>
    `${name} ${((n - (commandsBefore.get(name) ?? 0)) / streams).toFixed(1)}`
  );
  console.log(
    `${streams} streams: caller's workerd ${(cpu / streams).toFixed(2)} ms CPU per stream (/proc stat; schedstat: ${
      (precise / streams).toFixed(2)
    } ms), ` +
      `${(wall / streams).toFixed(0)} ms wall, commands per stream (all instances): ${commands.join(", ")}`,
  );
  console.log(`voluntary context switches per stream, by thread name: ${wakeupsPerStream.join(", ")}`);
  console.log(`CPU per stream, by thread name: ${cpuPerStream.join(", ")}`);
} finally {
  await worker.stop();
  await router.stop();
  await workerSide.stop();
  await stack.close();
}
