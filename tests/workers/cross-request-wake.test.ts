/**
 * The platform behaviour the store's in-process wake-ups rely on under workerd (src/store/wakeup.ts): a wait's
 * promise, created by the waiting request and settled by ANOTHER request's notify, runs the waiter's continuation in
 * the waiter's own request, so its next fetch and its response writes are its own — with the compatibility date the
 * deployment uses (wrangler.toml). Real workerd binary, the store's real Wakeup class, 50 waiters each woken by a
 * different request, a streamed response woken three times, a waiter whose client left. And the same exchange with
 * `no_handle_cross_request_promise_resolution` fails ("Worker's code had hung"), which is why the store's waits were
 * once timer-polled and why the flag (on by default since 2024-10-14) must stay on.
 */
import assert from "node:assert/strict";
import { startWorkerd, type WorkerdInstance } from "../fixtures/workerd.ts";

const probeEntry = new URL("./wake-probe-entry.ts", import.meta.url).pathname;
const wranglerToml = new URL("../../wrangler.toml", import.meta.url);

async function deployedCompatibilityDate(): Promise<string> {
  const match = (await Deno.readTextFile(wranglerToml)).match(/^compatibility_date\s*=\s*"([0-9-]+)"/m);
  if (!match) throw new Error("wrangler.toml has no compatibility_date");
  return match[1];
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function get(worker: WorkerdInstance, path: string, signal?: AbortSignal): Promise<string> {
  const response = await fetch(`${worker.url}${path}`, { signal });
  return `${response.status} ${await response.text()}`;
}

async function withProbe(flags: string[], body: (worker: WorkerdInstance) => Promise<void>): Promise<void> {
  const echo = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => new Response(`echo:${new URL(request.url).searchParams.get("tag")}`),
  );
  const worker = await startWorkerd({
    entry: probeEntry,
    bindings: { TARGET: `http://127.0.0.1:${echo.addr.port}` },
    compatibilityDate: await deployedCompatibilityDate(),
    compatibilityFlags: flags,
  });
  try {
    await body(worker);
  } finally {
    await worker.stop();
    await echo.shutdown();
  }
}

/** Resolves once `n` waiters are parked (the waits were sent before). */
async function parked(worker: WorkerdInstance, n: number): Promise<void> {
  for (let i = 0; i < 200 && (await get(worker, "/size")) !== `200 ${n}`; i++) await sleep(25);
  assert.equal(await get(worker, "/size"), `200 ${n}`);
}

Deno.test("workerd: a request woken by another request's notify continues in its own request", async () => {
  await withProbe([], async (worker) => {
    const waits = Array.from({ length: 50 }, (_, i) => get(worker, `/wait?id=w${i}`));
    await parked(worker, 50);
    await Promise.all(Array.from({ length: 50 }, (_, i) => get(worker, `/wake?id=w${i}`)));
    assert.deepEqual(await Promise.all(waits), Array.from({ length: 50 }, (_, i) => `200 true echo:w${i}`));

    const stream = fetch(`${worker.url}/stream?id=s`).then((response) => response.text());
    for (let round = 0; round < 3; round++) {
      await parked(worker, 1);
      assert.equal(await get(worker, `/wake?id=s-${round}`), "200 ok");
    }
    assert.equal(await stream, "true echo:s-0\ntrue echo:s-1\ntrue echo:s-2\n");

    // No wake-up: the waiter's own timer ends its wait.
    assert.equal(await get(worker, "/wait?id=alone&ms=100"), "200 false echo:alone");

    // A waiter whose client left, then woken: nothing breaks, it leaves the table.
    const left = new AbortController();
    const gone = get(worker, "/wait?id=gone", left.signal).catch((err) => (err as Error).name);
    await parked(worker, 1);
    left.abort();
    assert.equal(await gone, "AbortError");
    await get(worker, "/wake?id=gone");
    await parked(worker, 0);
    assert.equal(await get(worker, "/wait?id=after&ms=50"), "200 false echo:after");
    await sleep(200);
    assert.doesNotMatch(worker.logs(), /hung|different request|cancel/i);
  });
});

Deno.test("workerd: without handle_cross_request_promise_resolution the same wake-up hangs the woken request", async () => {
  await withProbe(["no_handle_cross_request_promise_resolution"], async (worker) => {
    const wait = get(worker, "/wait?id=w&ms=2000");
    await parked(worker, 1);
    await get(worker, "/wake?id=w");
    assert.match(await wait, /^500/);
    await sleep(200);
    assert.match(worker.logs(), /hung/);
  });
});
