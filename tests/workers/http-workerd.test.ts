/**
 * The HTTP-level suite (tests/api/http-suite.ts) against the real router bundle under real workerd, with the Upstash
 * store on a real redis-server behind the Upstash REST bridge. The bundle is built once; each test gets a fresh
 * workerd and an empty database.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWorkers } from "../../scripts/build-workers.ts";
import { startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";
import { startWorkerd } from "../fixtures/workerd.ts";
import { httpSuite } from "../api/http-suite.ts";
import { type RouterTarget, TEST_ENV, testKeys } from "../helpers/router.ts";

const entry = new URL("../../src/entry-workers.ts", import.meta.url).pathname;

interface Shared {
  bundleDir: string;
  redisUrl: string;
  token: string;
  flush(): Promise<void>;
  close(): Promise<void>;
}

let shared: Promise<Shared> | undefined;

function setUp(): Promise<Shared> {
  shared ??= (async () => {
    const bundleDir = await mkdtemp(join(tmpdir(), "auxot-workerd-bundle-"));
    await buildWorkers({ entry, outdir: bundleDir });
    const redis = await startRedisServer();
    const token = crypto.randomUUID();
    const bridge = await startUpstashBridge({ redisPort: redis.port, token });
    return {
      bundleDir,
      redisUrl: bridge.url,
      token,
      flush: async () => {
        const response = await fetch(bridge.url, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify(["FLUSHALL"]),
        });
        await response.body?.cancel();
      },
      close: async () => {
        await bridge.close();
        await redis.stop();
        await rm(bundleDir, { recursive: true, force: true });
      },
    };
  })();
  return shared;
}

httpSuite("workerd", async (env = {}): Promise<RouterTarget> => {
  const s = await setUp();
  await s.flush();
  const keys = await testKeys();
  const bindings: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...TEST_ENV, ...keys.env, ...env })) {
    if (value !== undefined) bindings[name] = value;
  }
  const instance = await startWorkerd({
    bundleDir: s.bundleDir,
    bindings: { ...bindings, AUXOT_REDIS_URL: s.redisUrl, AUXOT_REDIS_TOKEN: s.token },
  });
  return {
    kind: "workerd",
    url: instance.url,
    keys,
    get logs() {
      return instance.logs().split("\n");
    },
    close: () => instance.stop(),
  };
});

// Registered last: the suite's shared redis-server, bridge and bundle go away after every test above.
Deno.test({ name: "workerd: teardown", sanitizeOps: false, sanitizeResources: false }, async () => {
  if (shared) await (await shared).close();
});
