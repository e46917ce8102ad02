/**
 * (5) Authentication: what a request's key check costs with a key already verified (the KeyVerifier's cached
 * path) vs a first Argon2id verification (bench/auth-micro.ts, its own process); and what a flood of well-formed
 * wrong keys does to legitimate requests through the router — from one source address (the per-client throttle
 * applies) and spread over many loopback addresses (it does not; only the bounded Argon2id pool protects).
 */
import { join } from "node:path";
import { type BenchContext, chatTarget, NON_STREAM_MESSAGE, pathByKey } from "../context.ts";
import { runFlood, runTimed } from "../lib/run-load.ts";
import { median, ms, num, percentile } from "../lib/stats.ts";
import { ROOT } from "../stack.ts";
import { AuthMicroResult } from "../auth-micro.ts";

async function authMicro(ctx: BenchContext) {
  const s = ctx.settings.auth;
  const input = { cachedCalls: s.cachedCalls, batches: s.batches, firstVerifications: s.firstVerifications };
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "bench/auth-micro.ts"), JSON.stringify(input)],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(300_000),
  }).output();
  if (!output.success) {
    throw new Error(`auth-micro failed: ${new TextDecoder().decode(output.stderr).slice(-1_000)}`);
  }
  return AuthMicroResult.parse(JSON.parse(new TextDecoder().decode(output.stdout)));
}

export async function authSection(ctx: BenchContext): Promise<void> {
  const s = ctx.settings.auth;
  const section = ctx.report.section("5. Authentication");
  ctx.log("auth: cached vs first verification");
  const micro = await authMicro(ctx);
  const cachedUs = median(micro.cachedUs);
  const firstMs = median(micro.firstMs);
  section.tables.push({
    header: ["Key check", "Cost per request"],
    rows: [
      ["Cached key (HMAC digest + lookup)", `${cachedUs.toFixed(1)} µs`],
      ["First verification (Argon2id, m=19456 t=2 p=1, WASM)", ms(firstMs)],
    ],
  });
  section.notes.push(
    `KeyVerifier.authenticate in its own process: cached = median of ${s.batches} batches of ${s.cachedCalls} ` +
      `calls; first = median of ${s.firstVerifications} verifications, each with a fresh verifier and store.`,
  );
  ctx.report.target({
    target: "Cached auth per request",
    goal: "≤ 50 µs",
    measured: `${cachedUs.toFixed(1)} µs`,
    met: Number.isFinite(cachedUs) ? cachedUs <= 50 : undefined,
  });

  const router = pathByKey(ctx, "router");
  if (!router) {
    ctx.report.warn("Auth flood not measured: the router (embedded store) did not start.");
    return;
  }
  const legit = chatTarget(router, NON_STREAM_MESSAGE);
  const floodTarget = { ...legit, name: "flood", pids: [] };
  const rows: string[][] = [];
  const legitRow = (
    label: string,
    samples: number[],
    flood?: { requests: number; statuses: Record<string, number> },
  ) => {
    const statuses = flood
      ? Object.entries(flood.statuses).sort().map(([status, n]) => `${status}: ${num(n)}`).join(", ")
      : "–";
    rows.push([
      label,
      num(samples.length),
      ms(percentile(samples, 0.5)),
      ms(percentile(samples, 0.99)),
      flood ? num(flood.requests / (s.floodMs / 1000)) : "–",
      statuses,
    ]);
  };
  ctx.log("auth: legitimate traffic alone");
  const alone = await runTimed({ target: legit, durationMs: s.floodMs });
  legitRow("No flood", alone.samples);
  for (const sources of [1, 64]) {
    ctx.log(`auth: legitimate traffic beside a wrong-key flood from ${sources} address(es)`);
    const flood = runFlood({
      target: floodTarget,
      connections: s.floodConnections,
      durationMs: s.floodMs + 500,
      sourceAddresses: sources,
    });
    // Let the flood build up before measuring.
    await new Promise((r) => setTimeout(r, 500));
    const during = await runTimed({ target: legit, durationMs: s.floodMs });
    const flooded = await flood;
    legitRow(`Flood from ${sources === 1 ? "1 address" : `${sources} addresses`}`, during.samples, flooded);
    if (flooded.errors) {
      section.notes.push(`Flood (${sources}): ${flooded.errors} connection errors (${flooded.firstError}).`);
    }
  }
  section.tables.push({
    header: ["Legitimate traffic", "Requests", "p50", "p99", "Wrong keys/s sent", "Wrong-key answers"],
    rows,
  });
  section.notes.push(
    `Legitimate: sequential non-streaming chat requests with a valid (cached) key for ${s.floodMs / 1000} s. ` +
      `Flood: ${s.floodConnections} connections, each request with a fresh well-formed wrong key (new connection ` +
      "each). The API key is known by then, so 401 = refused by comparing digests (no Argon2id); 429 = refused " +
      "while waiting for an Argon2id turn (only before a role's key has been verified once).",
  );
}
