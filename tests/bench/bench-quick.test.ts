/**
 * The benchmark harness works end to end: `bench/main.ts --quick` as a subprocess (every system under test as its
 * own process, the load generator, every section) prints the results table. Asserts the table's shape only, never
 * a figure. The peer gateway is used when bench/peer is installed and otherwise skipped loudly (`--no-peer-install`
 * keeps this test offline and short); the table must then say so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const KILL_AFTER_MS = 240_000;

Deno.test("bench --quick prints the results table", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auxot-bench-test-" });
  try {
    const outFile = join(dir, "latest.md");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "bench/main.ts"), "--quick", "--no-peer-install", "--out", outFile],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A hung harness must not hang the suite: SIGTERM makes the bench stop every process it started.
    const timer = setTimeout(() => child.kill("SIGTERM"), KILL_AFTER_MS);
    const output = await child.output().finally(() => clearTimeout(timer));
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    const context = `\n--- stdout ---\n${stdout}\n--- stderr (end) ---\n${stderr.slice(-3_000)}`;

    assert.equal(output.code, 0, `bench --quick exited with ${output.code}${context}`);
    assert.match(stdout, /^# Auxot benchmark$/m, context);
    assert.match(stdout, /mode: \*\*quick\*\*/, context);
    for (const section of ["1", "2", "3", "4", "5", "6", "7"]) {
      assert.match(stdout, new RegExp(`^## ${section}\\. `, "m"), `section ${section} missing${context}`);
    }
    assert.match(stdout, /^## Targets$/m, context);
    assert.doesNotMatch(stdout, /Section "[a-z]+" FAILED|stopped early/, context);
    // The baseline and the router were measured: their rows carry figures, not dashes.
    assert.match(stdout, /^\| Direct \(mock engine\) +\| \d[\d.,]* ms /m, context);
    assert.match(stdout, /^\| Auxot router, embedded store \(Deno\) +\| \d[\d.,]* ms /m, context);
    // Portkey is measured, or the table says loudly that it was not.
    const portkeyRow = /^\| Portkey gateway [\d.]+ \(Node\) +\| \d/m.test(stdout);
    assert.ok(
      portkeyRow || /Portkey \(peer\) NOT MEASURED/.test(stdout),
      `Portkey neither measured nor flagged${context}`,
    );
    assert.equal(await Deno.readTextFile(outFile), stdout.trimEnd() + "\n", "the results file matches stdout");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
