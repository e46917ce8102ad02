/**
 * The platform fact behind "no request settles a promise another request awaits" under workerd (docs/store.md, "Who
 * owns a wait"): N callers each park a request on the store's real `Wakeup` (bench/lib/wake-probe-entry.ts) and
 * wake it from another request, one after another, for S seconds. At 8 callers workerd runs every woken continuation
 * in its own request (63K wake-ups in 30 s, none lost, measured here with workerd 1.20261117.1); at 32, 48 or 64 it
 * starts failing every waiter after 5–17K wake-ups ("Worker's code had hung") and stays broken. Prints a line per
 * 5 s and the first workerd log lines; exits 1 once a wake-up failed.
 *
 *   deno run -A bench/workerd-wake-probe.ts [--callers 64] [--seconds 30]
 */
import { parseArgs } from "node:util";
import { startWorkerd } from "../tests/fixtures/workerd.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { callers: { type: "string", default: "64" }, seconds: { type: "string", default: "30" } },
});
const echo = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  (request) => new Response(`echo:${new URL(request.url).searchParams.get("tag")}`),
);
const worker = await startWorkerd({
  entry: new URL("./lib/wake-probe-entry.ts", import.meta.url).pathname,
  bindings: { TARGET: `http://127.0.0.1:${echo.addr.port}` },
  compatibilityDate: (await Deno.readTextFile(new URL("../wrangler.toml", import.meta.url)))
    .match(/^compatibility_date\s*=\s*"([0-9-]+)"/m)![1],
});
const tally = { woken: 0, failed: 0, firstFailure: "" };
const endAt = Date.now() + Number(values.seconds) * 1_000;
let next = 0;

/** One caller: parks a waiter, wakes it from other requests until it answers, checks the answer; again. */
async function caller(): Promise<void> {
  while (Date.now() < endAt) {
    const id = `w${next++}`;
    const answer = fetch(`${worker.url}/wait?id=${id}&ms=3000`)
      .then(async (r) => `${r.status} ${await r.text()}`)
      .catch((err) => String(err));
    let settled: string | undefined;
    // The waiter may not be parked yet when the first wake arrives: wake until it answers.
    for (let i = 0; i < 200 && settled === undefined; i++) {
      await (await fetch(`${worker.url}/wake?id=${id}`)).body?.cancel();
      settled = await Promise.race([answer, new Promise<undefined>((done) => setTimeout(() => done(undefined), 2))]);
    }
    const result = settled ?? await answer;
    if (result === `200 true echo:${id}`) tally.woken++;
    else {
      tally.failed++;
      tally.firstFailure ||= result.slice(0, 200);
    }
  }
}

const ticker = setInterval(() => console.log(JSON.stringify(tally)), 5_000);
await Promise.all(Array.from({ length: Number(values.callers) }, caller));
clearInterval(ticker);
console.log(JSON.stringify({ callers: Number(values.callers), seconds: Number(values.seconds), ...tally }));
if (tally.failed > 0) console.log(worker.logs().slice(0, 2_000));
await worker.stop();
await echo.shutdown();
Deno.exit(tally.failed > 0 ? 1 : 0);
