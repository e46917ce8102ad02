/**
 * Child processes for the reliability suite: router instances (the real src/entry-deno.ts), scripted workers
 * (tests/fixtures/scripted-worker.ts) and the Upstash REST bridge (tests/reliability/bridge-process.ts), each on
 * 127.0.0.1, with their output kept for the secrets check; helpers hurt them (kill -9, SIGSTOP/SIGCONT, restart on
 * the same port) and measure them from /proc (RSS, CPU time, sockets and their TCP states).
 * A `ProcessGroup` remembers everything it started; `closeAll()` (in `finally`) kills what is still running.
 */
import type { Env } from "../../src/config.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
const READY_TIMEOUT_MS = 30_000;
/** Output kept per process (characters), newest last: enough for a debug-level scenario. */
const MAX_OUTPUT_CHARS = 64 * 1024 * 1024;

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Every line the process wrote (stdout and stderr), including those of earlier incarnations. */
  readonly lines: string[];
  readonly exited: Promise<Deno.CommandStatus>;
  readonly running: boolean;
  signal(signal: Deno.Signal): void;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit. */
  stop(graceMs?: number): Promise<void>;
}

export interface RouterProcess extends Child {
  readonly url: string;
  readonly port: number;
  /** kill -9 and start again on the same port with the same environment; `whileDown` runs in between. */
  restart(options?: { whileDown?: () => Promise<void> }): Promise<void>;
}

export interface WorkerProcess extends Child {
  readonly id: string;
}

export interface BridgeProcess extends Child {
  readonly url: string;
  /** kill -9 (in-flight requests fail, connections are refused) and start again on the same port after `downMs`. */
  outage(downMs: number): Promise<void>;
}

export interface ProcessGroup {
  router(env: Env, options?: { name?: string; port?: number }): Promise<RouterProcess>;
  worker(
    routerUrl: string,
    key: string,
    options?: { slots?: number; tokenDelayMs?: number; pollWaitMs?: number; logLevel?: string; name?: string },
  ): Promise<WorkerProcess>;
  /** Any Deno script of the repository (`deno run -A <args>`) with exactly `env`; not waited on. */
  script(name: string, args: string[], env: Env): Child;
  readonly children: Child[];
  closeAll(): Promise<void>;
}

export function processGroup(): ProcessGroup {
  const children: Child[] = [];
  const stops: (() => Promise<void>)[] = [];
  return {
    children,
    async router(env, options = {}) {
      const router = await startRouterProcess(env, options);
      children.push(router);
      stops.push(() => router.kill());
      return router;
    },
    async worker(routerUrl, key, options = {}) {
      const worker = await startWorkerProcess(routerUrl, key, options);
      children.push(worker);
      stops.push(() => worker.kill());
      return worker;
    },
    script(name, args, env) {
      const lines: string[] = [];
      const spawned = spawnDeno(args, env, lines, () => {});
      let running = true;
      void spawned.exited.then(() => running = false);
      const child = childOf(name, lines, () => spawned, () => running);
      children.push(child);
      stops.push(() => child.stop(3_000));
      return child;
    },
    async closeAll() {
      await Promise.all(stops.splice(0).map((stop) => stop().catch(() => {})));
    },
  };
}

/** A free loopback port: bind port 0, read it, release it. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

interface Spawned {
  process: Deno.ChildProcess;
  exited: Promise<Deno.CommandStatus>;
}

/** Spawns `deno run -A <args>` from the repository root; lines go to `lines`, and `onLine` sees each one. */
function spawnDeno(args: string[], env: Env, lines: string[], onLine: (line: string) => void): Spawned {
  const cleanEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) cleanEnv[k] = v;
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: repoRoot,
    // Only what the child needs: no AUXOT_* from this process's environment leaks into it.
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      NO_COLOR: "1",
      ...cleanEnv,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let kept = 0;
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        if (kept < MAX_OUTPUT_CHARS) {
          lines.push(line);
          kept += line.length;
        }
        onLine(line);
      }
    }
    if (partial) lines.push(partial);
  };
  const drained = Promise.all([read(process.stdout), read(process.stderr)]);
  const exited = drained.then(() => process.status);
  return { process, exited };
}

function childOf(name: string, lines: string[], current: () => Spawned, isRunning: () => boolean): Child {
  const signal = (sig: Deno.Signal) => {
    try {
      current().process.kill(sig);
    } catch {
      // already exited
    }
  };
  return {
    name,
    get pid() {
      return current().process.pid;
    },
    lines,
    get exited() {
      return current().exited;
    },
    get running() {
      return isRunning();
    },
    signal,
    async kill() {
      signal("SIGCONT"); // a stopped process must be running to notice anything but SIGKILL; harmless otherwise
      signal("SIGKILL");
      await current().exited;
    },
    async stop(graceMs = 5_000) {
      signal("SIGCONT");
      signal("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceful = await Promise.race([
        current().exited.then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), graceMs)),
      ]);
      clearTimeout(timer);
      if (!graceful) {
        signal("SIGKILL");
        await current().exited;
      }
    },
  };
}

/** Waits until `ready` resolves or the process exits first (an error with its last output). */
async function untilReady<T>(what: string, ready: Promise<T>, spawned: Spawned, lines: string[]): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const failed = Symbol("failed");
  const outcome = await Promise.race([
    ready,
    spawned.exited.then(() => failed),
    new Promise<typeof failed>((r) => timer = setTimeout(() => r(failed), READY_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  if (outcome === failed) {
    try {
      spawned.process.kill("SIGKILL");
    } catch {
      // exited
    }
    await spawned.exited;
    throw new Error(`${what} did not become ready:\n${lines.slice(-20).join("\n")}`);
  }
  return outcome as T;
}

/**
 * Starts the router (src/entry-deno.ts) with exactly `env` (plus a bind to 127.0.0.1 on `port` or a free port, and
 * an AUXOT_ENV_FILE that does not exist, so no .env is read or written). Ready when it logs "router listening" or
 * accepts a connection.
 */
export async function startRouterProcess(
  env: Env,
  options: { name?: string; port?: number } = {},
): Promise<RouterProcess> {
  const lines: string[] = [];
  let port = options.port ?? freePort();
  // ENOENT is "no .env": the router reads none and, keys being set, writes none.
  const envFile = "/nonexistent-auxot-reliability/absent.env";
  let spawned!: Spawned;
  let running = false;
  const launch = async () => {
    for (let attempt = 1;; attempt++) {
      let listening!: () => void;
      const ready = new Promise<void>((r) => listening = r);
      const fullEnv = { ...env, AUXOT_HOST: "127.0.0.1", AUXOT_PORT: String(port), AUXOT_ENV_FILE: envFile };
      spawned = spawnDeno(["src/entry-deno.ts"], fullEnv, lines, (line) => {
        if (line.includes('"router listening"')) listening();
      });
      running = true;
      void spawned.exited.then(() => running = false);
      // Below info level the router does not log that it listens: then a connection it accepts says so.
      void (async () => {
        while (running) {
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port })).close();
            return listening();
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })();
      try {
        await untilReady(`router ${options.name ?? ""} on port ${port}`, ready, spawned, lines);
        return;
      } catch (err) {
        // The port may have been taken between our probe and the bind (or still be held a moment after a kill).
        const taken = lines.slice(-5).some((l) => /AddrInUse|address already in use/i.test(l));
        if (!taken || attempt >= 5) throw err;
        if (options.port === undefined && !restarting) port = freePort();
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  };
  let restarting = false;
  await launch();
  const child = childOf(options.name ?? "router", lines, () => spawned, () => running);
  return {
    ...child,
    get pid() {
      return child.pid;
    },
    get exited() {
      return child.exited;
    },
    get running() {
      return child.running;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    async restart(restartOptions = {}) {
      await child.kill();
      restarting = true;
      try {
        await restartOptions.whileDown?.();
        await launch();
      } finally {
        restarting = false;
      }
    },
  };
}

/** Starts tests/fixtures/scripted-worker.ts (key passed in the environment); ready after its first good poll. */
export async function startWorkerProcess(
  routerUrl: string,
  key: string,
  options: { slots?: number; tokenDelayMs?: number; pollWaitMs?: number; logLevel?: string; name?: string } = {},
): Promise<WorkerProcess> {
  const lines: string[] = [];
  let announce!: (id: string) => void;
  const ready = new Promise<string>((r) => announce = r);
  const spawned = spawnDeno(
    [
      "tests/fixtures/scripted-worker.ts",
      "--router-url",
      routerUrl,
      "--slots",
      String(options.slots ?? 4),
      "--token-delay-ms",
      String(options.tokenDelayMs ?? 0),
      "--poll-wait-ms",
      String(options.pollWaitMs ?? 5_000),
      "--log-level",
      options.logLevel ?? "debug",
    ],
    { AUXOT_WORKER_KEY: key },
    lines,
    (line) => {
      if (line.startsWith('{"ready":true')) announce((JSON.parse(line) as { id: string }).id);
    },
  );
  let running = true;
  void spawned.exited.then(() => running = false);
  const id = await untilReady(`worker ${options.name ?? ""}`, ready, spawned, lines);
  const child = childOf(options.name ?? "worker", lines, () => spawned, () => running);
  return {
    ...child,
    id,
    get pid() {
      return child.pid;
    },
    get exited() {
      return child.exited;
    },
    get running() {
      return child.running;
    },
  };
}

/** Resident memory of a process from /proc (kB → bytes): now and the peak so far (VmHWM). */
export async function memoryOf(pid: number): Promise<{ rssBytes: number; peakRssBytes: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: field("VmRSS"), peakRssBytes: field("VmHWM") };
}

/** Open file descriptors of a process, and how many of them are sockets. */
export async function descriptorsOf(pid: number): Promise<{ fds: number; sockets: number }> {
  let fds = 0, sockets = 0;
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    fds++;
    try {
      if ((await Deno.readLink(`/proc/${pid}/fd/${entry.name}`)).startsWith("socket:")) sockets++;
    } catch {
      // closed meanwhile
    }
  }
  return { fds, sockets };
}

const TCP_STATES: Record<string, string> = {
  "01": "established",
  "02": "syn_sent",
  "03": "syn_recv",
  "04": "fin_wait1",
  "05": "fin_wait2",
  "06": "time_wait",
  "07": "close",
  "08": "close_wait",
  "09": "last_ack",
  "0A": "listen",
  "0B": "closing",
};

export interface TcpSocket {
  state: string;
  localPort: number;
  remotePort: number;
}

/**
 * The TCP sockets a process holds (from its fds and /proc/net/tcp{,6}). A socket in `close_wait` is one whose peer
 * hung up and that the process never closed: the signature of a leaked connection.
 */
export async function tcpSocketsOf(pid: number): Promise<TcpSocket[]> {
  const inodes = new Set<string>();
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(await Deno.readLink(`/proc/${pid}/fd/${entry.name}`));
      if (match) inodes.add(match[1]);
    } catch {
      // closed meanwhile
    }
  }
  const sockets: TcpSocket[] = [];
  for (const table of ["tcp", "tcp6"]) {
    const text = await Deno.readTextFile(`/proc/${pid}/net/${table}`).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9])) continue;
      const port = (address: string) => parseInt(address.slice(address.lastIndexOf(":") + 1), 16);
      sockets.push({
        state: TCP_STATES[fields[3]] ?? fields[3],
        localPort: port(fields[1]),
        remotePort: port(fields[2]),
      });
    }
  }
  return sockets;
}

/**
 * Hangs up this process's connections to a router (`hangUp` closes them) and reports how many of them the router
 * still holds a second later — connections it should have closed (must be 0) — and how many were closed.
 */
export async function connectionsLeftAfterHangUp(
  router: { pid: number; port: number },
  hangUp: () => void | Promise<void>,
): Promise<{ closed: number; left: number }> {
  const ours = async () =>
    new Set((await tcpSocketsOf(Deno.pid)).filter((s) => s.remotePort === router.port).map((s) => s.localPort));
  const open = await ours();
  await hangUp();
  await new Promise((r) => setTimeout(r, 1_000));
  const stillOpen = await ours();
  const closed = new Set([...open].filter((port) => !stillOpen.has(port)));
  const left = (await tcpSocketsOf(router.pid)).filter((s) => s.localPort === router.port && closed.has(s.remotePort));
  return { closed: closed.size, left: left.length };
}

/** CPU time (user + system) a process used so far, in ms, from /proc/<pid>/stat. */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of the full line)
  return ticks * 10; // USER_HZ is 100 on Linux
}

/**
 * The Upstash REST bridge (tests/fixtures/upstash-bridge.ts) in a process of its own (tests/reliability/
 * bridge-process.ts): a separate service, as Upstash is, that an outage can kill and bring back on its port.
 */
export async function startBridgeProcess(redisPort: number, token: string): Promise<BridgeProcess> {
  const lines: string[] = [];
  const port = freePort();
  let spawned!: Spawned;
  let running = false;
  const launch = async () => {
    let announce!: () => void;
    const ready = new Promise<void>((r) => announce = r);
    spawned = spawnDeno(
      ["tests/reliability/bridge-process.ts", "--redis-port", String(redisPort), "--port", String(port)],
      { AUXOT_BRIDGE_TOKEN: token },
      lines,
      (line) => line.startsWith('{"url"') && announce(),
    );
    running = true;
    void spawned.exited.then(() => running = false);
    await untilReady(`bridge on port ${port}`, ready, spawned, lines);
  };
  await launch();
  const child = childOf("bridge", lines, () => spawned, () => running);
  return {
    ...child,
    get pid() {
      return child.pid;
    },
    get exited() {
      return child.exited;
    },
    get running() {
      return child.running;
    },
    url: `http://127.0.0.1:${port}`,
    async outage(downMs) {
      await child.kill();
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
  };
}
