/**
 * A fault of the Upstash REST bridge fixture this suite found, kept as a regression test: a client that disconnects
 * while the bridge still has its request open made node:http destroy the request with an "aborted" ECONNRESET
 * error that nothing handled, and the unhandled rejection ended whatever process hosted the bridge — under load, a
 * router killed with SIGKILL does exactly that. Fixed in tests/fixtures/upstash-bridge.ts (`.catch` on `#serve`).
 */
import assert from "node:assert/strict";
import { startRedisServer } from "../fixtures/redis-server.ts";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";

Deno.test("upstash bridge: a client that disconnects mid-request does not take the bridge down", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    unhandled.push(event.reason);
    event.preventDefault(); // recorded, so the assertion below reports it instead of the runner aborting the file
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const redis = await startRedisServer();
  const bridge = await startUpstashBridge({ redisPort: redis.port, token: "t" });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: bridge.port });
    const head = "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer t\r\ncontent-length: 100\r\n\r\n";
    await conn.write(new TextEncoder().encode(`${head}["PI`));
    await new Promise((r) => setTimeout(r, 100));
    conn.close();
    await new Promise((r) => setTimeout(r, 300));

    const ping = await fetch(bridge.url, {
      method: "POST",
      headers: { authorization: "Bearer t" },
      body: JSON.stringify(["PING"]),
    });
    assert.deepEqual(await ping.json(), { result: "PONG" });
    assert.deepEqual(unhandled.map(String), [], "the bridge left a rejection unhandled");
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    await bridge.close();
    await redis.stop();
  }
});
