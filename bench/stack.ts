/**
 * Starts the systems the benchmark measures, each as its own process on 127.0.0.1 and a free port: the mock
 * engine, the router under Deno (src/entry-deno.ts, embedded or Upstash store) with a GPU worker in external-engine
 * or real-inference mode, the router under workerd, a redis-server with the Upstash REST bridge, and the peer
 * gateway (Portkey, installed into bench/peer with `npm ci` on first use and forced onto 127.0.0.1 by a preload).
 * Every process is registered with bench/lib/process.ts and stopped by PID at the end.
 */
import { join } from "node:path";
import { createKeys, HASH_VARIABLE } from "../src/keyset.ts";
import { startRedisServer } from "../tests/fixtures/redis-server.ts";
import { startUpstashBridge, type UpstashBridge } from "../tests/fixtures/upstash-bridge.ts";
import { startWorkerd } from "../tests/fixtures/workerd.ts";
import { type Child, freePort, getText, onCleanup, spawnChild, tail, waitFor } from "./lib/process.ts";
import { findPid } from "./lib/proc-stats.ts";

export const ROOT = new URL("../", import.meta.url).pathname;
const PEER_DIR = join(ROOT, "bench/peer");
const PORTKEY_START = "node_modules/@portkey-ai/gateway/build/start-server.js";

let runDir: Promise<string> | undefined;

/** One temporary folder for this run, removed at the end. */
export function benchTempDir(): Promise<string> {
  runDir ??= Deno.makeTempDir({ prefix: "auxot-bench-" }).then((dir) => {
    onCleanup(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    return dir;
  });
  return runDir;
}

/** A server under test. */
export interface Service {
  name: string;
  url: string;
  port: number;
  /** Processes whose CPU and memory count as this service's (the router, or the gateway). */
  pid: number;
  stop(): Promise<void>;
  /** What the service wrote to stdout/stderr (last lines), to explain its errors. */
  logs(): string;
}

export interface BenchKeys {
  admin: string;
  api: string;
  /** AUXOT_*_KEY_HASH for the router. */
  hashes: Record<string, string>;
}

/** Fresh keys for this run (Argon2id hashing, ~0.2 s). */
export async function makeKeys(): Promise<BenchKeys> {
  const keys = await createKeys(["admin", "api"]);
  const byRole = Object.fromEntries(keys.map((k) => [k.role, k.key]));
  return {
    admin: byRole.admin,
    api: byRole.api,
    hashes: Object.fromEntries(keys.map((k) => [HASH_VARIABLE[k.role], k.hash])),
  };
}

export async function startMock(tokens = 16): Promise<Service> {
  const child = spawnChild("mock engine", Deno.execPath(), [
    "run",
    "-A",
    join(ROOT, "bench/mock-engine.ts"),
    "--port",
    "0",
    "--tokens",
    String(tokens),
  ]);
  const { url, port } = JSON.parse(await child.firstLine) as { url: string; port: number };
  return { name: "mock", url, port, pid: child.pid, stop: child.stop, logs: child.output };
}

export interface RouterOptions {
  name: string;
  keys: BenchKeys;
  /** AUXOT_* settings on top of the benchmark's defaults (model custom:bench, log level warn). */
  env?: Record<string, string>;
  /** Another checkout whose router to run (a baseline measured in the same run); this one by default. */
  root?: string;
}

/** The `--v8-flags=…` of a checkout's `deno task start` (none in older checkouts), so its router runs as started. */
export async function startV8Flags(root: string): Promise<string[]> {
  const config = await Deno.readTextFile(join(root, "deno.json")).catch(() => "{}");
  const start = (JSON.parse(config) as { tasks?: { start?: string } }).tasks?.start ?? "";
  return start.match(/--v8-flags=\S+/g) ?? [];
}

/** The environment of a benchmark's router under Deno on `port`: no .env (every setting is here), the keys' hashes,
 * then `extra`. */
export async function denoRouterEnv(
  port: number,
  keys: BenchKeys,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  return {
    AUXOT_PORT: String(port),
    AUXOT_HOST: "127.0.0.1",
    AUXOT_MODEL: "custom:bench",
    AUXOT_LOG_LEVEL: "warn",
    AUXOT_ENV_FILE: join(await benchTempDir(), "absent.env"),
    ...keys.hashes,
    ...extra,
  };
}

/** The router under Deno, as `deno task start` runs it (its own process, src/entry-deno.ts). */
export async function startDenoRouter(options: RouterOptions): Promise<Service & { child: Child }> {
  const port = freePort();
  const root = options.root ?? ROOT;
  const child = spawnChild(options.name, Deno.execPath(), [
    "run",
    "-A",
    ...await startV8Flags(root),
    join(root, "src/entry-deno.ts"),
  ], {
    cwd: root,
    env: await denoRouterEnv(port, options.keys, options.env),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `${options.name} to answer /health`,
    async () => {
      const { status } = await getText(`${url}/health`, {}, 2_000);
      return status === 200 || status === 503 ? true : undefined;
    },
    30_000,
    child,
  );
  return { name: options.name, url, port, pid: child.pid, stop: child.stop, logs: child.output, child };
}

/** A GPU worker process: `--llama-url` (external engine) or `--model-path` (real inference) in `args`. */
export function startGpuWorker(name: string, routerUrl: string, keys: BenchKeys, args: string[]): Child {
  return spawnChild(name, Deno.execPath(), ["run", "-A", join(ROOT, "workers/gpu/main.ts"), ...args], {
    cwd: ROOT,
    env: { AUXOT_GPU_KEY: keys.admin, AUXOT_ROUTER_URL: routerUrl, AUXOT_LOG_LEVEL: "warn" },
  });
}

/** Waits until the router's /health counts `count` ready workers. */
export async function waitForWorkers(routerUrl: string, worker: Child, timeoutMs: number, count = 1): Promise<void> {
  await waitFor(
    `a ready worker on ${routerUrl}`,
    async () => {
      const { text } = await getText(`${routerUrl}/health`, {}, 2_000);
      const health = JSON.parse(text) as { workers?: { ready?: number } };
      return (health.workers?.ready ?? 0) >= count ? true : undefined;
    },
    timeoutMs,
    worker,
  );
}

export interface RedisBridge {
  url: string;
  token: string;
  /** Redis commands the bridge ran for its clients (what Upstash bills). */
  commands(): number;
  stop(): Promise<void>;
}

/** A real redis-server and, in this process, the Upstash REST bridge in front of it. */
export async function startRedisBridge(): Promise<RedisBridge> {
  const redis = await startRedisServer();
  const stopRedis = onCleanup(() => redis.stop());
  const token = crypto.randomUUID();
  const bridge: UpstashBridge = await startUpstashBridge({ redisPort: redis.port, token });
  const stop = onCleanup(async () => {
    await bridge.close();
    await stopRedis();
  });
  return { url: bridge.url, token, commands: () => bridge.commandCount, stop };
}

/** The router bundle (src/entry-workers.ts) under real workerd; Workers need the Upstash store. */
export async function startWorkerdRouter(keys: BenchKeys, bridge: RedisBridge): Promise<Service> {
  const instance = await startWorkerd({
    entry: join(ROOT, "src/entry-workers.ts"),
    bindings: {
      ...keys.hashes,
      AUXOT_MODEL: "custom:bench",
      AUXOT_LOG_LEVEL: "warn",
      AUXOT_REDIS_URL: bridge.url,
      AUXOT_REDIS_TOKEN: bridge.token,
    },
  });
  const stop = onCleanup(() => instance.stop());
  const port = Number(new URL(instance.url).port);
  // A configuration the Worker refuses answers 500 with the reason: fail now, not after waiting for a worker.
  const health = await getText(`${instance.url}/health`, {}, 10_000).catch((err) => ({ status: 0, text: String(err) }));
  if (health.status !== 200) {
    await stop();
    throw new Error(`the router under workerd answered /health with ${health.status}: ${health.text.slice(0, 300)}`);
  }
  const pid = findPid(`--socket-addr=http=127.0.0.1:${port}`);
  if (pid === undefined) {
    await stop();
    throw new Error("workerd started but its process was not found in /proc");
  }
  return { name: "workerd router", url: instance.url, port, pid, stop, logs: instance.logs };
}

/**
 * Installs the peer gateway into bench/peer (its own package.json and lock file, so the main install stays small)
 * unless it is there already. Returns a reason when it is not usable.
 */
export async function ensurePeer(allowInstall: boolean, log: (line: string) => void): Promise<string | undefined> {
  if (await peerInstalledAsLocked()) return undefined;
  if (!allowInstall) return "bench/peer is not installed and installing was not allowed (--no-peer-install)";
  log("installing the peer gateway into bench/peer (npm ci, first run only)…");
  const started = Date.now();
  const npm = new Deno.Command("npm", {
    args: ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
    cwd: PEER_DIR,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  });
  try {
    const out = await npm.output();
    if (!out.success) {
      return `npm ci in bench/peer failed (code ${out.code}): ${new TextDecoder().decode(out.stderr).slice(-500)}`;
    }
  } catch (err) {
    return `npm ci in bench/peer could not run: ${(err as Error).message}`;
  }
  if (!await peerInstalledAsLocked()) return "npm ci in bench/peer did not install the pinned versions";
  log(`peer installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return undefined;
}

/** The versions bench/peer/package-lock.json pins: Portkey, and the @hono/node-server its streaming needs. */
const PEER_PINS = { "@portkey-ai/gateway": "1.15.2", "@hono/node-server": "1.13.5" };

/** Whether bench/peer/node_modules holds exactly the pinned versions (else `npm ci` runs again). */
async function peerInstalledAsLocked(): Promise<boolean> {
  for (const [name, version] of Object.entries(PEER_PINS)) {
    try {
      const manifest = JSON.parse(await Deno.readTextFile(join(PEER_DIR, "node_modules", name, "package.json")));
      if (manifest.version !== version) return false;
    } catch {
      return false;
    }
  }
  return true;
}

export const PEER_VERSION = PEER_PINS["@portkey-ai/gateway"];

/** Whether every listening socket on `port` is bound to 127.0.0.1 (from /proc/net/tcp and tcp6). */
export function boundToLoopbackOnly(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let found = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4 || fields[3] !== "0A") continue; // 0A = LISTEN
      const [address, portHex] = fields[1].split(":");
      if (portHex !== hexPort) continue;
      found++;
      const loopback = address === "0100007F" || address === "0000000000000000FFFF00000100007F";
      if (!loopback) return false;
    }
  }
  return found > 0;
}

/** Portkey's gateway on Node, bound to 127.0.0.1 by a preload (it would listen on every interface otherwise). */
export async function startPortkey(): Promise<Service> {
  const port = freePort();
  const child = spawnChild("portkey", "node", [
    "--require",
    join(PEER_DIR, "listen-loopback.cjs"),
    PORTKEY_START,
    `--port=${port}`,
    "--headless",
  ], { cwd: PEER_DIR });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "the peer gateway to answer",
    async () => {
      const { status } = await getText(`${url}/`, {}, 2_000);
      return status === 200 ? true : undefined;
    },
    30_000,
    child,
  );
  if (!boundToLoopbackOnly(port)) {
    await child.stop();
    throw new Error(`the peer gateway listened beyond 127.0.0.1 on port ${port}: stopped it\n${tail(child)}`);
  }
  return { name: "portkey", url, port, pid: child.pid, stop: child.stop, logs: child.output };
}

/** The headers that make Portkey forward to the mock engine as an OpenAI provider. */
export function portkeyHeaders(mockUrl: string): Record<string, string> {
  return {
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": `${mockUrl}/v1`,
    authorization: "Bearer dummy",
  };
}
