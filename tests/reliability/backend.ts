/**
 * The store behind the routers of a reliability run: "embedded" (each router process keeps its own state) or
 * "upstash" (a real redis-server behind the Upstash REST bridge process, shared by every router instance). For Upstash it
 * also reads Redis directly, to find what a run left behind.
 */
import type { Env } from "../../src/config.ts";
import { storeKeys } from "../../src/store/upstash/keys.ts";
import { UpstashStore } from "../../src/store/upstash/store.ts";
import { type RedisServer, startRedisServer } from "../fixtures/redis-server.ts";
import { bulkText, RespConnection, type RespReply } from "../fixtures/resp-client.ts";
import { type BridgeProcess, startBridgeProcess } from "./processes.ts";

export type StoreKind = "embedded" | "upstash";

export interface Backend {
  kind: StoreKind;
  /** Variables that point a router at this store (none for embedded). */
  env: Env;
  /** The secret a router needs for the store (checked against every log line). */
  secrets: string[];
  redis?: RedisServer;
  /** The REST bridge, a process of its own (so an outage can kill it). */
  bridge?: BridgeProcess;
  /** Upstash: what the router's keys look like in Redis now. Embedded: nothing to read. */
  redisKeys(): Promise<RedisKeyReport>;
  /**
   * Upstash: runs the store's own sweep as an instance whose finished-job TTL has already passed, so the finished
   * jobs a run left are removed now rather than after the routers' finishedTtl (60 s): what remains afterwards is
   * what the sweep does not know about. Embedded: nothing to do.
   */
  sweepFinished(): Promise<void>;
  /** What the store's own processes (the bridge) wrote. */
  logLines(): string[];
  close(): Promise<void>;
}

export interface RedisKeyReport {
  total: number;
  /** job:{id} and events:{id} keys (finished or not). */
  jobKeys: number;
  /** Of those, keys with no TTL (they would never go away). */
  jobKeysWithoutTtl: number;
  /** Longest remaining TTL of a job key (ms). */
  longestJobTtlMs: number;
  /** Index entries that name a job: running, lanes, deadlines, queue deadlines, callers (must be 0 once drained). */
  liveIndexEntries: number;
  /** Every key with no TTL (besides the shared counters hash). */
  persistentKeys: string[];
}

const EMPTY_REPORT: RedisKeyReport = {
  total: 0,
  jobKeys: 0,
  jobKeysWithoutTtl: 0,
  longestJobTtlMs: 0,
  liveIndexEntries: 0,
  persistentKeys: [],
};

export async function startBackend(kind: StoreKind): Promise<Backend> {
  if (kind === "embedded") {
    return {
      kind,
      env: {},
      secrets: [],
      redisKeys: () => Promise.resolve(EMPTY_REPORT),
      sweepFinished: () => Promise.resolve(),
      logLines: () => [],
      close: () => Promise.resolve(),
    };
  }
  const token = `tok_${crypto.randomUUID().replaceAll("-", "")}`;
  const redis = await startRedisServer();
  let bridge: BridgeProcess;
  try {
    bridge = await startBridgeProcess(redis.port, token);
  } catch (err) {
    await redis.stop();
    throw err;
  }
  return {
    kind,
    env: { AUXOT_REDIS_URL: bridge.url, AUXOT_REDIS_TOKEN: token },
    secrets: [token],
    redis,
    bridge,
    redisKeys: () => readKeys(redis.port),
    logLines: () => bridge.lines.map((line) => `bridge: ${line}`),
    async sweepFinished() {
      const janitor = new UpstashStore({ url: bridge.url, token, options: { finishedTtlMs: 1 } });
      try {
        // A router's sweep may hold the sweep lock for a moment (the janitor's reap then does nothing): retry.
        for (let attempt = 0; attempt < 50; attempt++) {
          await janitor.reap();
          if ((await readKeys(redis.port)).jobKeys === 0) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await janitor.close();
      }
    },
    async close() {
      await bridge.kill();
      await redis.stop();
    },
  };
}

async function readKeys(port: number): Promise<RedisKeyReport> {
  const conn = await RespConnection.open(port);
  try {
    const keys = strings(await conn.command("KEYS", "*"));
    const k = storeKeys();
    const report: RedisKeyReport = { ...EMPTY_REPORT, total: keys.length, persistentKeys: [] };
    const liveIndexes = [k.running, k.deadlines, k.queueDeadlines, k.callers];
    for (const key of keys) {
      const ttl = integer(await conn.command("PTTL", key));
      const isJob = key.startsWith(k.job("")) || key.startsWith(k.events(""));
      if (isJob) {
        report.jobKeys++;
        if (ttl < 0) report.jobKeysWithoutTtl++;
        report.longestJobTtlMs = Math.max(report.longestJobTtlMs, ttl);
      }
      if (liveIndexes.includes(key)) report.liveIndexEntries += integer(await conn.command("ZCARD", key));
      if (key.startsWith(k.lane(""))) report.liveIndexEntries += integer(await conn.command("LLEN", key));
      if (ttl === -1 && key !== k.counters) report.persistentKeys.push(key);
    }
    return report;
  } finally {
    conn.close();
  }
}

function strings(reply: RespReply): string[] {
  if (reply.kind !== "array" || reply.value === null) throw new Error(`expected an array reply, got ${reply.kind}`);
  return reply.value.map((item) => bulkText(item) ?? "");
}

function integer(reply: RespReply): number {
  if (reply.kind !== "integer") throw new Error(`expected an integer reply, got ${JSON.stringify(reply)}`);
  return reply.value;
}
