/**
 * Abuse from the network while legitimate callers keep working: slow-loris connections (headers or a body trickled
 * a few bytes at a time, never finished) and a flood of wrong keys (well-formed keys that cost an Argon2id
 * verification, and malformed ones that must cost nothing). The router runs as a process so its CPU time, memory and
 * sockets can be read from /proc; the legitimate load is classified as the fault runs do (caller.ts).
 */
import { generateKey } from "../../src/auth/keys.ts";
import { testKeys } from "../helpers/router.ts";
import { type Flavour, runLoad, streamCall, type Tally, uniqueWords } from "./caller.ts";
import { FAULT_ENV, sleep } from "./faults.ts";
import {
  connectionsLeftAfterHangUp,
  cpuMsOf,
  descriptorsOf,
  memoryOf,
  processGroup,
  type RouterProcess,
  tcpSocketsOf,
} from "./processes.ts";

export interface AbuseRun {
  /** Slow-loris connections held open during the legitimate load. */
  slowConnections: number;
  /** Wrong-key requests sent during the legitimate load (half well-formed, half malformed), and at most in flight. */
  wrongKeys: number;
  wrongKeyConcurrency?: number;
  /** Legitimate streaming requests during the abuse. */
  legitimate: number;
  /** Keep the slow connections trickling at least this long (ms) to see whether the router ever drops them. */
  holdMs?: number;
}

export interface AbuseFigures {
  slowConnections: number;
  /** Slow connections the router had answered (a 408 once the body deadline passed) and closed, after holdSeconds. */
  slowAnswered: number;
  slowClosedByRouter: number;
  holdSeconds: number;
  wrongKeys: number;
  /** Statuses by kind of wrong key: "well-formed 401" (an Argon2id verification each), "well-formed 429", ... */
  wrongKeyStatuses: Record<string, number>;
  legitimate: number;
  legitimateTally: Tally;
  /** Router CPU time during the abuse and load (ms), and per wrong-key request. */
  routerCpuMs: number;
  /** Argon2id verifications the router ran in all (its /metrics). */
  argon2Runs: number;
  rssBeforeMb: number;
  peakRssMb: number;
  socketsBefore: number;
  peakSockets: number;
  /** After the attackers hang up and the load drains: router sockets, and those in CLOSE_WAIT (must be 0). */
  socketsAfter: number;
  /** Connections from this process (attackers, wrong keys, callers) that hung up, and those the router kept (0). */
  clientConnectionsClosed: number;
  clientConnectionsLeft: number;
  closeWaitAfter: number;
  seconds: number;
}

const MB = 1024 * 1024;

export async function runAbuse(run: AbuseRun): Promise<AbuseFigures> {
  const keys = await testKeys();
  const group = processGroup();
  const attackers: Deno.TcpConn[] = [];
  let attacking = true;
  // The load's own HTTP clients: closed before the sockets are counted, so pooled connections do not count.
  const clients = [Deno.createHttpClient({}), Deno.createHttpClient({})];
  try {
    const router = await group.router({ ...FAULT_ENV, ...keys.env, AUXOT_LOG_LEVEL: "warn" }, { name: "router" });
    await Promise.all(
      [0, 1].map((i) => group.worker(router.url, keys.admin, { slots: 8, logLevel: "warn", name: `w${i}` })),
    );
    const warm = await streamCall({
      url: router.url,
      key: keys.api,
      flavour: "openai",
      words: ["warm"],
      deadlineMs: 30_000,
    });
    if (warm.kind !== "completed") throw new Error(`the warm-up call failed: ${JSON.stringify(warm)}`);
    await sleep(300);
    const before = await memoryOf(router.pid);
    const socketsBefore = (await descriptorsOf(router.pid)).sockets;
    const cpuBefore = await cpuMsOf(router.pid);
    let peakSockets = socketsBefore;
    const started = performance.now();

    // Slow-loris: half trickle headers that never end, half send headers and trickle a body that never ends.
    for (let i = 0; i < run.slowConnections; i++) {
      attackers.push(await Deno.connect({ hostname: "127.0.0.1", port: router.port }));
    }
    const trickle = Promise.all(attackers.map((conn, i) => slowLoris(conn, i % 2 === 0, keys.api, () => attacking)));

    const flood = wrongKeyFlood(router, run.wrongKeys, run.wrongKeyConcurrency ?? 20, clients[0]);
    const load = runLoad({ n: run.legitimate, concurrency: 10, intervalMs: 20 }, (i) => ({
      url: router.url,
      key: keys.api,
      flavour: (i % 2 === 0 ? "openai" : "anthropic") as Flavour,
      words: uniqueWords("legit", i),
      deadlineMs: 60_000,
      client: clients[1],
    }));
    const sampling = (async () => {
      while (attacking) {
        peakSockets = Math.max(peakSockets, (await descriptorsOf(router.pid)).sockets);
        await sleep(200);
      }
    })();
    const [{ tally }, wrongKeyStatuses] = await Promise.all([load, flood]);
    const routerCpuMs = await cpuMsOf(router.pid) - cpuBefore;
    const metrics = await (await fetch(`${router.url}/metrics`, { headers: { authorization: `Bearer ${keys.admin}` } }))
      .text();
    const argon2Runs = Number(/^auxot_auth_argon2_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const seconds = (performance.now() - started) / 1000;
    const holdLeft = (run.holdMs ?? 0) - (performance.now() - started);
    if (holdLeft > 0) await sleep(holdLeft);
    const holdSeconds = (performance.now() - started) / 1000;
    const peak = await memoryOf(router.pid); // the high-water mark, slow connections included

    attacking = false;
    await sampling;
    const slow = await trickle;
    const slowClosedByRouter = slow.filter((o) => o.closed).length;
    const slowAnswered = slow.filter((o) => o.answered).length;
    const { left, closed } = await connectionsLeftAfterHangUp(router, () => {
      for (const conn of attackers.splice(0)) closeQuietly(conn);
      for (const client of clients) client.close();
    });
    const sockets = await tcpSocketsOf(router.pid);
    return {
      slowConnections: run.slowConnections,
      slowClosedByRouter,
      slowAnswered,
      holdSeconds,
      wrongKeys: run.wrongKeys,
      wrongKeyStatuses,
      legitimate: run.legitimate,
      legitimateTally: tally,
      routerCpuMs,
      argon2Runs,
      rssBeforeMb: before.rssBytes / MB,
      peakRssMb: peak.peakRssBytes / MB,
      socketsBefore,
      peakSockets,
      socketsAfter: (await descriptorsOf(router.pid)).sockets,
      clientConnectionsClosed: closed,
      clientConnectionsLeft: left,
      closeWaitAfter: sockets.filter((s) => s.state === "close_wait").length,
      seconds,
    };
  } finally {
    attacking = false;
    for (const conn of attackers) closeQuietly(conn);
    for (const client of clients) {
      try {
        client.close();
      } catch {
        // closed already
      }
    }
    await group.closeAll();
  }
}

interface SlowOutcome {
  /** The router answered (a 408 for a body that did not arrive in time). */
  answered: boolean;
  /** The router closed the connection (end of stream, or a write refused). */
  closed: boolean;
}

/**
 * One slow-loris connection: a request whose headers (or, with a valid key, whose body) arrive a few bytes every
 * 200 ms and never end, while whatever the router sends back is read.
 */
async function slowLoris(
  conn: Deno.TcpConn,
  slowHeaders: boolean,
  apiKey: string,
  going: () => boolean,
): Promise<SlowOutcome> {
  const outcome: SlowOutcome = { answered: false, closed: false };
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        outcome.answered = true;
      }
    } catch {
      // reset, or closed by us at the end
    }
    if (going()) outcome.closed = true;
  })();
  const encoder = new TextEncoder();
  const head = slowHeaders
    ? "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    : `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${apiKey}\r\n` +
      'content-type: application/json\r\ncontent-length: 60000\r\n\r\n{"messages":"';
  try {
    await conn.write(encoder.encode(head));
    let n = 0;
    while (going() && !outcome.closed) {
      await sleep(200);
      if (!going()) break;
      await conn.write(encoder.encode(slowHeaders ? `x-slow-${n++}: y\r\n` : "xx"));
    }
  } catch {
    outcome.closed = true; // the router closed it (or reset it)
  }
  void reading;
  return outcome;
}

/** Wrong keys from one client: half well-formed (rtr_…, costing Argon2id until throttled), half malformed. */
async function wrongKeyFlood(router: RouterProcess, total: number, concurrency: number, client: Deno.HttpClient) {
  const statuses: Record<string, number> = {};
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const i = next++;
      const wellFormed = i % 2 === 0;
      const key = wellFormed ? generateKey("api") : `rtr_${"x".repeat(i % 40)}!`;
      const response = await fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
        client,
      });
      await response.body?.cancel();
      const label = `${wellFormed ? "well-formed" : "malformed"} ${response.status}`;
      statuses[label] = (statuses[label] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return statuses;
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
