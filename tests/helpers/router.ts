/**
 * Test harness: real routers on loopback (in-process under Deno.serve; workerd and multi-process targets live in
 * their own fixtures) with freshly generated keys, and real long-polling workers around any Engine.
 */
import { createApp } from "../../src/app.ts";
import type { Env } from "../../src/config.ts";
import { loadConfig } from "../../src/config.ts";
import { createKeys, HASH_VARIABLE, type KeyWithHash } from "../../src/keyset.ts";
import { createLogger } from "../../src/log.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import type { JobStore, StoreOptions } from "../../src/store/store.ts";
import type { Engine } from "../../workers/common/engine.ts";
import { WorkerLoop } from "../../workers/common/worker-loop.ts";

export interface TestKeys {
  admin: string;
  api: string;
  tools: string;
  /** AUXOT_*_KEY_HASH variables for these keys. */
  env: Env;
}

let keys: Promise<TestKeys> | undefined;

/** One key set per test process: Argon2id hashing costs ~100 ms a key. */
export function testKeys(): Promise<TestKeys> {
  keys ??= createKeys(["admin", "api", "tools"]).then((set: KeyWithHash[]) => {
    const byRole = Object.fromEntries(set.map((k) => [k.role, k.key]));
    return {
      admin: byRole.admin,
      api: byRole.api,
      tools: byRole.tools,
      env: Object.fromEntries(set.map((k) => [HASH_VARIABLE[k.role], k.hash])),
    };
  });
  return keys;
}

export interface RouterTarget {
  kind: "deno" | "workerd";
  url: string;
  keys: TestKeys;
  /** Every log line the router wrote (JSON), for assertions and the secrets check. */
  logs: string[];
  /** The in-process store, when the target has one (not for workerd or other processes). */
  store?: JobStore;
  close(): Promise<void>;
}

export type MakeTarget = (env?: Env) => Promise<RouterTarget>;

/** A small model policy that resolves offline: tests serve a custom model name. */
export const TEST_ENV: Env = {
  AUXOT_MODEL: "custom:tiny-test",
  AUXOT_CTX_SIZE: "4096",
  AUXOT_MAX_PARALLEL: "2",
  AUXOT_LOG_LEVEL: "debug",
};

export async function startDenoRouter(
  env: Env = {},
  options: { store?: JobStore; storeOptions?: Partial<StoreOptions> } = {},
): Promise<RouterTarget> {
  const k = await testKeys();
  const config = loadConfig({ ...TEST_ENV, ...k.env, ...env });
  const logs: string[] = [];
  const log = createLogger(config.logLevel, (line) => logs.push(line));
  const store = options.store ?? new EmbeddedStore({ leaseMs: config.leaseMs, ...options.storeOptions });
  const app = createApp({ config, store, log });
  const controller = new AbortController();
  const sweeper = setInterval(() => app.ctx.reapSoon(), 200);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
    (request, info) => app.fetch(request, { client: (info.remoteAddr as Deno.NetAddr).hostname }),
  );
  return {
    kind: "deno",
    url: `http://127.0.0.1:${server.addr.port}`,
    keys: k,
    logs,
    store,
    close: async () => {
      clearInterval(sweeper);
      controller.abort();
      await server.finished;
      if (!options.store) await store.close();
    },
  };
}

export interface RunningWorker {
  loop: WorkerLoop;
  /** Settles when the loop ends (rejects with FatalWorkerError when refused). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export function startWorker(
  target: { url: string },
  engine: Engine,
  options: { key: string; pollWaitMs?: number; shutdownGraceMs?: number; logs?: string[] },
): RunningWorker {
  const log = createLogger("debug", (line) => options.logs?.push(line));
  const loop = new WorkerLoop({
    routerUrl: target.url,
    key: options.key,
    engine,
    log,
    pollWaitMs: options.pollWaitMs ?? 2_000,
    shutdownGraceMs: options.shutdownGraceMs ?? 1_000,
  });
  const done = loop.run();
  done.catch(() => {});
  return {
    loop,
    done,
    stop: async () => {
      await loop.stop();
      await done.catch(() => {});
    },
  };
}

/** Polls `check` every 20 ms until it returns a truthy value (bounded by `timeoutMs`, then throws). */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
