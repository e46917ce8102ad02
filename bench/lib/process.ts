/**
 * Child processes of the benchmark: spawned with a minimal environment, their output kept (last lines only) for
 * error messages, and every one registered so `stopAll()` ends them by PID (SIGTERM, then SIGKILL) whatever
 * happens (so do the stops registered with `onCleanup`). Also: free loopback ports, waiting for a URL to answer, and running the load generator.
 */

const MAX_LOG_CHARS = 20_000;

export interface Child {
  name: string;
  pid: number;
  /** stdout+stderr so far (last MAX_LOG_CHARS characters). */
  output(): string;
  /** Resolves with the first stdout line (e.g. a fixture's {"url": ...}). */
  firstLine: Promise<string>;
  exited: Promise<Deno.CommandStatus>;
  hasExited(): boolean;
  stop(): Promise<void>;
}

const running = new Set<Child>();

/** The variables a child needs to find its tools and caches; secrets and AUXOT_* from our own env stay out. */
function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "LANG"];
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of keep) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

export function spawnChild(
  name: string,
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: "null" | "piped" } = {},
): Child {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: { ...baseEnv(), ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let resolveLine: (line: string) => void = () => {};
  let rejectLine: (err: Error) => void = () => {};
  const firstLine = new Promise<string>((resolve, reject) => {
    resolveLine = resolve;
    rejectLine = reject;
  });
  firstLine.catch(() => {});
  let stdoutBuffer = "";
  let gotLine = false;
  const read = async (stream: ReadableStream<Uint8Array>, isStdout: boolean) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      log = (log + text).slice(-MAX_LOG_CHARS);
      if (isStdout && !gotLine) {
        stdoutBuffer += text;
        const nl = stdoutBuffer.indexOf("\n");
        if (nl >= 0) {
          gotLine = true;
          resolveLine(stdoutBuffer.slice(0, nl));
        }
      }
    }
  };
  const readers = Promise.all([read(child.stdout, true), read(child.stderr, false)]);
  let done = false;
  const exited = readers.then(() => child.status).finally(() => {
    done = true;
    rejectLine(new Error(`${name} exited before printing a line:\n${log.slice(-2_000)}`));
  });
  const handle: Child = {
    name,
    pid: child.pid,
    output: () => log,
    firstLine,
    exited,
    hasExited: () => done,
    stop: async () => {
      running.delete(handle);
      if (done) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceful = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), 5_000)),
      ]);
      clearTimeout(timer);
      if (!graceful) {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
        await exited;
      }
    },
  };
  running.add(handle);
  return handle;
}

/** Other things to stop at the end (workerd from its fixture, the bridge, redis-server); returns the stop. */
const cleanups = new Set<() => Promise<void>>();

export function onCleanup(stop: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = () => {
    cleanups.delete(once);
    return done ??= stop();
  };
  cleanups.add(once);
  return once;
}

/** Stops every child process and registered cleanup; never throws. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((child) => child.stop()));
  await Promise.allSettled([...cleanups].map((stop) => stop()));
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Polls `check` until it returns a value, the child exits, or `timeoutMs` passes (then throws with its output). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  child?: Child,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child?.hasExited()) throw new Error(`${child.name} exited while waiting for ${what}:\n${tail(child)}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${child ? `:\n${tail(child)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function tail(child: Child, chars = 1_500): string {
  return child.output().slice(-chars);
}

/** GETs a URL with a timeout; the body as text and the status. */
export async function getText(
  url: string,
  headers: Record<string, string> = {},
  timeoutMs = 5_000,
): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, text: await response.text() };
}
