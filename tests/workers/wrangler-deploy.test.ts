/**
 * The Cloudflare deployment as `wrangler deploy` would upload it, offline: a dry run of the real wrangler (pinned,
 * run under Deno since wrangler 4 wants Node >= 22) with the repository's wrangler.toml. It must bundle, emit the
 * precompiled WASM modules, and contain no Deno-only code. The upload size is printed for the record.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("wrangler deploy --dry-run bundles the router offline", async () => {
  const outdir = await mkdtemp(join(tmpdir(), "auxot-wrangler-"));
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "node_modules/wrangler/wrangler-dist/cli.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
      ],
      cwd: ROOT,
      env: {
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    const size = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(text);
    assert.ok(size, text);
    console.log(`Workers bundle: ${size[1]} (gzip ${size[2]})`);
    const files = await readdir(outdir);
    assert.ok(files.some((f) => f.endsWith("-argon2.wasm")), files.join(", "));
    assert.ok(files.some((f) => f.endsWith("-blake2b.wasm")), files.join(", "));
    const bundle = await readFile(join(outdir, "entry-workers.js"), "utf8");
    assert.equal(/\bDeno\.[a-z]/i.test(bundle), false, "the Workers bundle uses a Deno-only API");
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
});
