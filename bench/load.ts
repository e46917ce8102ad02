/**
 * The benchmark's load generator, run as its own process so it never shares an event loop with what it measures:
 * reads one plan (bench/lib/plan.ts) as JSON on stdin, runs it over raw keep-alive HTTP/1.1 connections
 * (bench/lib/http1.ts) to 127.0.0.1 only, and writes one JSON result line on stdout.
 *
 *   echo '{"kind":"sequential",...}' | deno run -A bench/load.ts
 */
import net from "node:net";
import { encodeRequest, Http1Connection, type ResponseTiming } from "./lib/http1.ts";
import {
  type FloodResult,
  type ParsedPlan,
  PlanSchema,
  type Sample,
  type SequentialResult,
  type Target,
  type ThroughputResult,
  type TimedResult,
  type Window,
} from "./lib/plan.ts";
import { cpuMs } from "./lib/proc-stats.ts";
import { percentile } from "./lib/stats.ts";

function assertLoopback(target: Target): void {
  if (target.host !== "127.0.0.1") throw new Error(`load generator: ${target.name} is not on 127.0.0.1`);
}

class Failures {
  errors = 0;
  firstError?: string;
  add(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }
  toJSON() {
    return { errors: this.errors, ...(this.firstError ? { firstError: this.firstError } : {}) };
  }
}

/** One keep-alive connection that reconnects after a failure; non-2xx answers count as failures. */
class Client {
  #conn?: Http1Connection;
  readonly bytes: Uint8Array;
  constructor(readonly target: Target, readonly failures: Failures) {
    this.bytes = encodeRequest(target, target.request);
  }

  /**
   * A fresh connection, opened before timing starts: servers close idle keep-alive connections (Node's after 5 s),
   * and a target waits idle while the others take their turn in a round.
   */
  async reconnect(): Promise<void> {
    this.#conn?.close();
    try {
      this.#conn = await Http1Connection.open(this.target);
    } catch (err) {
      this.#conn = undefined;
      this.failures.add(`${this.target.name}: connect failed: ${(err as Error).message}`);
    }
  }

  async send(options: { stream?: boolean; keepBody?: boolean } = {}): Promise<ResponseTiming | undefined> {
    try {
      if (!this.#conn || this.#conn.closed) this.#conn = await Http1Connection.open(this.target);
      const response = await this.#conn.send(this.bytes, options);
      if (response.status < 200 || response.status >= 300) {
        const excerpt = response.body ? `: ${response.body.slice(0, 300)}` : "";
        this.failures.add(`${this.target.name}: HTTP ${response.status}${excerpt}`);
        return undefined;
      }
      return response;
    } catch (err) {
      this.#conn?.close();
      this.#conn = undefined;
      this.failures.add(`${this.target.name}: ${(err as Error).message}`);
      return undefined;
    }
  }

  close(): void {
    this.#conn?.close();
  }
}

async function runSequential(plan: ParsedPlan<"sequential">) {
  const states = plan.targets.map((target) => {
    const failures = new Failures();
    return { target, failures, client: new Client(target, failures), rounds: [] as Sample[][] };
  });
  const options = { stream: plan.stream, keepBody: plan.keepBody };
  // Warm-up: a JIT-compiled gateway keeps getting faster for its first ~1,000 requests.
  for (const state of states) {
    await state.client.reconnect();
    for (let i = 0; i < plan.warmup; i++) await state.client.send(options);
  }
  for (let round = 0; round < plan.rounds; round++) {
    // Rotate the order so no target always runs right after the same neighbour.
    for (let k = 0; k < states.length; k++) {
      const state = states[(round + k) % states.length];
      await state.client.reconnect();
      const samples: Sample[] = [];
      for (let i = 0; i < plan.perRound; i++) {
        const response = await state.client.send(options);
        if (!response) continue;
        samples.push({
          endMs: response.endMs,
          ...(response.firstContentMs !== undefined ? { firstContentMs: response.firstContentMs } : {}),
          ...(response.body !== undefined ? { body: response.body, reads: response.reads } : {}),
        });
      }
      state.rounds.push(samples);
    }
  }
  for (const state of states) state.client.close();
  const result: SequentialResult = {
    kind: "sequential",
    targets: states.map((s) => ({ name: s.target.name, rounds: s.rounds, ...s.failures.toJSON() })),
  };
  return result;
}

async function runTimed(plan: ParsedPlan<"timed">) {
  const failures = new Failures();
  const client = new Client(plan.target, failures);
  const samples: number[] = [];
  const deadline = performance.now() + plan.durationMs;
  while (performance.now() < deadline) {
    const response = await client.send();
    if (response) samples.push(response.endMs);
  }
  client.close();
  const result: TimedResult = { kind: "timed", samples, ...failures.toJSON() };
  return result;
}

async function throughputWindow(
  target: Target,
  connections: number,
  warmupMs: number,
  durationMs: number,
): Promise<Window> {
  const failures = new Failures();
  const clients = Array.from({ length: connections }, () => new Client(target, failures));
  const latencies: number[] = [];
  const t0 = performance.now();
  const windowStart = t0 + warmupMs;
  const windowEnd = windowStart + durationMs;
  const readCpu = () => Object.fromEntries(target.pids.map((pid) => [String(pid), cpuMs(pid)]));
  // CPU is read by whichever loop first crosses each edge of the window (timers fire late on a busy machine).
  let cpuStart: Record<string, number> | undefined;
  let cpuEnd: Record<string, number> | undefined;
  let windowErrors = 0;
  await Promise.all(clients.map(async (client) => {
    for (;;) {
      const started = performance.now();
      if (started >= windowStart) cpuStart ??= readCpu();
      if (started >= windowEnd) {
        cpuEnd ??= readCpu();
        return;
      }
      const before = failures.errors;
      const response = await client.send();
      const finished = performance.now();
      if (started >= windowStart && finished <= windowEnd) {
        if (response) latencies.push(finished - started);
        else windowErrors += failures.errors - before;
      }
      // A refused connection would otherwise spin: back off a little.
      if (!response) await new Promise((r) => setTimeout(r, 5));
    }
  }));
  for (const client of clients) client.close();
  const cpu: Record<string, number> = {};
  for (const pid of target.pids) {
    const used = (cpuEnd?.[String(pid)] ?? NaN) - (cpuStart?.[String(pid)] ?? NaN);
    if (Number.isFinite(used)) cpu[String(pid)] = used;
  }
  return {
    requests: latencies.length,
    seconds: durationMs / 1000,
    p50: latencies.length ? percentile(latencies, 0.5) : null,
    p99: latencies.length ? percentile(latencies, 0.99) : null,
    cpuMs: cpu,
    errors: windowErrors,
    ...(failures.firstError ? { firstError: failures.firstError } : {}),
  };
}

async function runThroughput(plan: ParsedPlan<"throughput">) {
  const byTarget = plan.targets.map((target) => ({ name: target.name, rounds: [] as Window[] }));
  for (let round = 0; round < plan.rounds; round++) {
    for (let k = 0; k < plan.targets.length; k++) {
      const index = (round + k) % plan.targets.length;
      const window = await throughputWindow(plan.targets[index], plan.connections, plan.warmupMs, plan.durationMs);
      byTarget[index].rounds.push(window);
    }
  }
  const result: ThroughputResult = { kind: "throughput", targets: byTarget };
  return result;
}

function wrongKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return "rtr_" + btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Wrong-key traffic over node:net sockets, which (unlike Deno.connect) can pick a source address: spreading the
 * flood over many loopback addresses defeats a per-client throttle, the worst case for the router.
 */
async function runFlood(plan: ParsedPlan<"flood">) {
  const failures = new Failures();
  const statuses: Record<string, number> = {};
  let requests = 0;
  const deadline = performance.now() + plan.durationMs;
  const loop = async (index: number) => {
    const localAddress = plan.sourceAddresses === 1 ? "127.0.0.1" : `127.0.0.${2 + (index % plan.sourceAddresses)}`;
    while (performance.now() < deadline) {
      const request = { ...plan.target.request, headers: { ...plan.target.request.headers } };
      request.headers.authorization = `Bearer ${wrongKey()}`;
      request.headers.connection = "close";
      const bytes = encodeRequest(plan.target, request);
      try {
        const status = await oneShot(plan.target, localAddress, bytes, deadline - performance.now());
        statuses[status] = (statuses[status] ?? 0) + 1;
        requests++;
      } catch (err) {
        failures.add((err as Error).message);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: plan.connections }, (_, i) => loop(i)));
  const result: FloodResult = { kind: "flood", requests, statuses, ...failures.toJSON() };
  return result;
}

/** One request on a fresh connection from `localAddress`; resolves with the status code. */
function oneShot(target: Target, localAddress: string, bytes: Uint8Array, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, localAddress });
    let head = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("flood request timed out"));
    }, Math.max(1, timeoutMs + 2_000));
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (chunk: Uint8Array) => {
      head += new TextDecoder().decode(chunk);
      if (head.length >= 12) {
        clearTimeout(timer);
        socket.destroy();
        resolve(head.slice(9, 12));
      }
    });
    socket.on("error", (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (head.length < 12) reject(new Error("flood connection closed before a status line"));
    });
  });
}

if (import.meta.main) {
  const plan = PlanSchema.parse(JSON.parse(await new Response(Deno.stdin.readable).text()));
  const targets = plan.kind === "sequential" || plan.kind === "throughput" ? plan.targets : [plan.target];
  targets.forEach(assertLoopback);
  const result = plan.kind === "sequential"
    ? await runSequential(plan)
    : plan.kind === "timed"
    ? await runTimed(plan)
    : plan.kind === "throughput"
    ? await runThroughput(plan)
    : await runFlood(plan);
  console.log(JSON.stringify(result));
}
