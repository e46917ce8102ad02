/**
 * The README's first command as a new user meets it: the Deno entry started in an empty directory. On a terminal
 * (emulated with `script`), it creates keys, shows them once and writes only their hashes to a 0600 .env, then
 * serves; the printed API key works. Without a terminal (a deployment's log stream) it refuses to start, naming the
 * variables, and prints no key. A malformed hash is refused by name.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePhc, verifyKey } from "../../src/auth/keys.ts";
import { parseDotEnv } from "../../src/platform/dotenv.ts";
import { eventually } from "../helpers/router.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ENTRY = ["run", "-A", "--config", join(ROOT, "deno.json"), join(ROOT, "src/entry-deno.ts")];
const KEY = /(?<![\w-])(adm|rtr|tls)_[\w-]{43}(?![\w-])/g;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function inTemp(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "auxot-first-run-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

Deno.test({
  name: "first run on a terminal: keys shown once, hashes in a 0600 .env, router serving",
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  inTemp(async (dir) => {
    const port = freePort();
    const command = [Deno.execPath(), ...ENTRY].map((a) => `'${a}'`).join(" ");
    const child = new Deno.Command("script", {
      args: ["-qec", command, "/dev/null"],
      cwd: dir,
      env: { AUXOT_PORT: String(port), AUXOT_HOST: "127.0.0.1", NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let output = "";
    const reading = (async () => {
      for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
    })();
    try {
      await eventually(
        async () => (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json()).catch(() => undefined)),
        30_000,
        "the router",
      );
      const keys = [...new Set([...output.matchAll(KEY)].map((m) => m[0]))];
      assert.deepEqual(keys.map((k) => k.slice(0, 3)).sort(), ["adm", "rtr", "tls"], output);
      const envPath = join(dir, ".env");
      assert.equal((await stat(envPath)).mode & 0o777, 0o600);
      const env = parseDotEnv(await readFile(envPath, "utf8"));
      for (const key of keys) assert.ok(!JSON.stringify(env).includes(key), "a raw key was written to .env");
      const api = keys.find((k) => k.startsWith("rtr_"))!;
      assert.equal(await verifyKey(api, parsePhc(env.AUXOT_API_KEY_HASH)!), true);
      const models = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${api}` } });
      assert.equal(models.status, 200);
      await models.body?.cancel();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdin.close().catch(() => {});
      await reading;
      await child.stderr.cancel().catch(() => {});
    }
  }));

Deno.test("without a terminal, missing or malformed hashes stop start-up by name and no key is printed", () =>
  inTemp(async (dir) => {
    const run = async (env: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ENTRY,
        cwd: dir,
        env: { AUXOT_PORT: String(freePort()), ...env },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) };
    };
    const missing = await run({});
    assert.equal(missing.code, 1);
    assert.match(missing.text, /AUXOT_ADMIN_KEY_HASH is not set/);
    assert.match(missing.text, /AUXOT_API_KEY_HASH is not set/);
    assert.equal(missing.text.match(KEY), null);
    await assert.rejects(stat(join(dir, ".env")), "no .env is written");
    const malformed = await run({
      AUXOT_ADMIN_KEY_HASH: "plaintext-oops",
      AUXOT_API_KEY_HASH: "$argon2id$v=19$m=1$x$y",
      AUXOT_JOB_TIMEOUT: "5 minutes",
    });
    assert.equal(malformed.code, 1);
    assert.match(malformed.text, /AUXOT_ADMIN_KEY_HASH is not an Argon2id hash/);
    assert.match(malformed.text, /AUXOT_API_KEY_HASH is not an Argon2id hash/);
    assert.match(malformed.text, /AUXOT_JOB_TIMEOUT="5 minutes" is not a duration/);
    assert.ok(!malformed.text.includes("plaintext-oops"), "a bad hash's value is not echoed");
  }));
