/**
 * Request bodies that arrive a few bytes at a time must cost the router about their size. Deno hands each body
 * read as a view into a 64 KiB buffer; whatever keeps a reference to a read's result pins that buffer, so 100
 * callers trickling 2 bytes every 100 ms pinned ~64 MB a second between them, far below AUXOT_MAX_BODY_BYTES. This
 * suite found it twice in readJsonBody (src/http/body.ts): chunks kept as read (fixed with `value.slice()`), then a
 * body deadline racing every read against one long-lived promise (fixed without Promise.race). A regression test.
 */
import assert from "node:assert/strict";
import { testKeys } from "../helpers/router.ts";
import { FAULT_ENV, sleep } from "./faults.ts";
import { memoryOf, processGroup } from "./processes.ts";

const CONNECTIONS = 100;
const TRICKLE_MS = 8_000;
/**
 * The bodies weigh ~16 KB in all. Each read still allocates a 64 KiB buffer that lives until the next garbage
 * collection, so RSS rises ~90 MB and levels off; with every chunk pinned it passes 400 MB and keeps climbing.
 */
const MAX_GROWTH_MB = 200;

Deno.test("reliability: request bodies trickled 2 bytes at a time keep the router's memory bounded", async () => {
  const keys = await testKeys();
  const group = processGroup();
  const connections: Deno.TcpConn[] = [];
  try {
    const router = await group.router({ ...FAULT_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" });
    const before = await memoryOf(router.pid);
    const encoder = new TextEncoder();
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${keys.api}\r\n` +
      `content-type: application/json\r\ncontent-length: 60000\r\n\r\n{"messages":"`;
    for (let i = 0; i < CONNECTIONS; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: router.port });
      connections.push(conn);
      await conn.write(encoder.encode(head));
    }
    for (let elapsed = 0; elapsed < TRICKLE_MS; elapsed += 100) {
      await sleep(100);
      await Promise.all(connections.map((conn) => conn.write(encoder.encode("xx"))));
    }
    const after = await memoryOf(router.pid);
    const growthMb = (after.rssBytes - before.rssBytes) / (1024 * 1024);
    console.log(`${CONNECTIONS} slow bodies, ${TRICKLE_MS / 100} chunks each: router RSS +${growthMb.toFixed(0)} MB`);
    assert.ok(growthMb < MAX_GROWTH_MB, `the router's memory grew by ${growthMb.toFixed(0)} MB for ~8 KB of bodies`);
  } finally {
    for (const conn of connections) {
      try {
        conn.close();
      } catch {
        // closed by the router
      }
    }
    await group.closeAll();
  }
});
