/**
 * Abuse, short version for CI: 200 slow-loris connections and 1,000 wrong keys (half well-formed, half malformed)
 * from one client while legitimate streaming requests run. The legitimate requests all complete; wrong keys get
 * 401/429 in the API's shape and cost a bounded number of Argon2id verifications (once the API key has been verified,
 * none: every other key is refused by comparing digests); memory
 * stays bounded; once the abusers hang up the router holds none of their connections.
 */
import assert from "node:assert/strict";
import { runAbuse } from "./abuse.ts";

/** Argon2id verifications in all: the API and worker keys, plus wrong keys that arrived before the API key was first
 * verified (a failing client's keys wait behind the valid one, 8 at most per address: src/auth/argon-gate.ts). */
const MAX_ARGON2_RUNS = 2 + 2 + 8;

Deno.test("reliability: slow-loris connections and a flood of wrong keys do not stop legitimate requests", async () => {
  const f = await runAbuse({ slowConnections: 200, wrongKeys: 1_000, legitimate: 100 });
  console.log(
    `legitimate ${JSON.stringify(f.legitimateTally)}; wrong keys ${JSON.stringify(f.wrongKeyStatuses)}; ` +
      `router CPU ${f.routerCpuMs} ms; Argon2id runs ${f.argon2Runs}; RSS ${f.rssBeforeMb.toFixed(0)} → peak ${
        f.peakRssMb.toFixed(0)
      } MB; ` +
      `sockets ${f.socketsBefore} → peak ${f.peakSockets} → ${f.socketsAfter}; slow connections answered ` +
      `${f.slowAnswered}, closed ${f.slowClosedByRouter} of ${f.slowConnections}`,
  );
  assert.equal(f.legitimateTally.completed, 100, JSON.stringify(f.legitimateTally));
  const statuses = Object.keys(f.wrongKeyStatuses).map((label) => label.split(" ")[1]);
  assert.ok(statuses.every((status) => status === "401" || status === "429"), JSON.stringify(f.wrongKeyStatuses));
  assert.equal(f.wrongKeyStatuses["malformed 429"] ?? 0, 0, "malformed keys are refused before any throttling");
  assert.ok(f.argon2Runs <= MAX_ARGON2_RUNS, `${f.argon2Runs} Argon2id verifications`);
  assert.ok(f.peakRssMb - f.rssBeforeMb < 400, `peak RSS grew by ${f.peakRssMb - f.rssBeforeMb} MB`);
  assert.ok(f.clientConnectionsClosed >= 200);
  assert.equal(f.clientConnectionsLeft, 0, "connections the router kept after their clients hung up");
  assert.equal(f.closeWaitAfter, 0);
});
