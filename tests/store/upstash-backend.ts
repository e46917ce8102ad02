/**
 * The Upstash store's test backend: a real redis-server, the Upstash REST bridge in front of it, and stores with a
 * fresh key prefix; plus small helpers the Upstash store tests share.
 */
import type { WorkerInfo } from "../../src/protocol/worker-protocol.ts";
import type { StoreOptions } from "../../src/store/store.ts";
import { StoreError } from "../../src/store/store.ts";
import { UpstashStore, type UpstashStoreConfig } from "../../src/store/upstash/store.ts";
import { RespConnection } from "../fixtures/resp-client.ts";
import { type RedisServer, startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge, type UpstashBridge } from "../fixtures/upstash-bridge.ts";

const TOKEN = "store-test-token";
let prefixes = 0;

export interface Backend {
  redis: RedisServer;
  bridge: UpstashBridge;
  prefix: string;
  store(options?: Partial<StoreOptions>, extra?: Partial<UpstashStoreConfig>): UpstashStore;
  /** A command straight to Redis (bypassing the bridge). */
  redisCommand(...args: string[]): Promise<void>;
  /** A command straight to Redis; its integer or string reply. */
  redisReply(...args: string[]): Promise<number | string | null>;
  /** Keys under this backend's prefix, read straight from Redis. */
  keys(): Promise<string[]>;
  close(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  const redis = await startRedisServer();
  let bridge: UpstashBridge;
  try {
    bridge = await startUpstashBridge({ redisPort: redis.port, token: TOKEN });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  const prefix = `test-${Date.now().toString(36)}-${++prefixes}`;
  const stores: UpstashStore[] = [];
  return {
    redis,
    bridge,
    prefix,
    async redisReply(...args) {
      const conn = await RespConnection.open(redis.port);
      try {
        const reply = await conn.command(...args);
        if (reply.kind === "integer") return reply.value;
        if (reply.kind === "bulk") return reply.value ? new TextDecoder().decode(reply.value) : null;
        if (reply.kind === "simple") return reply.value;
        return null;
      } finally {
        conn.close();
      }
    },
    async redisCommand(...args) {
      const conn = await RespConnection.open(redis.port);
      try {
        await conn.command(...args);
      } finally {
        conn.close();
      }
    },
    store(options = {}, extra = {}) {
      const store = new UpstashStore({ url: bridge.url, token: TOKEN, prefix, options, ...extra });
      stores.push(store);
      return store;
    },
    async keys() {
      const conn = await RespConnection.open(redis.port);
      try {
        const reply = await conn.command("KEYS", `${prefix}:*`);
        if (reply.kind !== "array" || !reply.value) return [];
        return reply.value.map((item) =>
          item.kind === "bulk" && item.value ? new TextDecoder().decode(item.value) : ""
        );
      } finally {
        conn.close();
      }
    },
    async close() {
      for (const store of stores) await store.close();
      await bridge.close();
      await redis.stop();
    },
  };
}

export const worker = (id: string, over: Partial<WorkerInfo> = {}): WorkerInfo => ({
  id,
  kind: "gpu",
  slots: 1,
  free: 1,
  ...over,
});

export async function withBackend(fn: (backend: Backend) => Promise<void>): Promise<void> {
  const backend = await startBackend();
  try {
    await fn(backend);
  } finally {
    await backend.close();
  }
}

/** Waits until Redis reports `count` clients parked in a blocking command (a condition, not a sleep). */
export async function waitForBlockedClients(backend: Backend, count: number): Promise<void> {
  const conn = await RespConnection.open(backend.redis.port);
  try {
    for (let i = 0; i < 500; i++) {
      const reply = await conn.command("INFO", "clients");
      const text = reply.kind === "bulk" && reply.value ? new TextDecoder().decode(reply.value) : "";
      if (new RegExp(`blocked_clients:${count}\\b`).test(text)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    conn.close();
  }
  throw new Error(`redis never reported ${count} blocked clients`);
}

/** Retries a step that may meet one stale pooled HTTP connection right after the service came back. */
export async function eventually<T>(step: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (attempt >= 5 || !(err instanceof StoreError)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
