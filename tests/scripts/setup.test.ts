/**
 * `deno task setup` as a user runs it: a real subprocess in a temporary directory; its output, the files it
 * writes and their modes, and that the printed hashes verify the printed keys.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keyRole, parsePhc, verifyKey } from "../../src/auth/keys.ts";
import { parseDotEnv } from "../../src/platform/dotenv.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function setup(args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      join(ROOT, "deno.json"),
      "--allow-env",
      "--allow-read",
      "--allow-write=.",
      join(ROOT, "scripts/setup.ts"),
      ...args,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

const keysIn = (
  text: string,
) => [...new Set([...text.matchAll(/(?<![\w-])(adm|rtr|tls)_[\w-]{43}(?![\w-])/g)].map((m) => m[0]))];

async function inTemp(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "auxot-setup-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

Deno.test("setup prints three keys once, with hashes that verify them", () =>
  inTemp(async (dir) => {
    const { code, stdout } = await setup([], dir);
    assert.equal(code, 0);
    const keys = keysIn(stdout);
    assert.deepEqual(keys.map((k) => keyRole(k)).sort(), ["admin", "api", "tools"]);
    const env = parseDotEnv(stdout.split("\n").map((l) => l.trim()).join("\n"));
    for (
      const [name, prefix] of [["AUXOT_ADMIN_KEY_HASH", "adm"], ["AUXOT_API_KEY_HASH", "rtr"], [
        "AUXOT_TOOLS_KEY_HASH",
        "tls",
      ]]
    ) {
      const phc = parsePhc(env[name]);
      assert.ok(phc, name);
      const key = keys.find((k) => k.startsWith(prefix))!;
      assert.equal(await verifyKey(key, phc), true);
      assert.equal(await verifyKey(keys.find((k) => !k.startsWith(prefix))!, phc), false);
    }
    assert.match(stdout, /worker:gpu --gpu-key-file ~\/\.auxot\/worker\.key/);
    assert.match(stdout, /worker:tools --tools-key-file ~\/\.auxot\/tools\.key/);
    for (const line of stdout.split("\n").filter((l) => /deno task|npx |curl |fly |wrangler /.test(l))) {
      assert.doesNotMatch(line, /(adm|rtr|tls)_[A-Za-z0-9_-]{43}/, "a key on a command line");
    }
  }));

Deno.test("setup --write-env writes hashes only to a 0600 .env and never overwrites it silently", () =>
  inTemp(async (dir) => {
    const first = await setup(["--write-env"], dir);
    assert.equal(first.code, 0, first.stderr);
    const path = join(dir, ".env");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const content = await readFile(path, "utf8");
    for (const key of keysIn(first.stdout)) assert.ok(!content.includes(key), "a raw key was written to .env");
    assert.ok(parsePhc(parseDotEnv(content).AUXOT_API_KEY_HASH));

    const again = await setup(["--write-env"], dir);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; not overwriting/);
    assert.equal(await readFile(path, "utf8"), content);
    assert.deepEqual(keysIn(again.stdout), [], "no keys are shown when nothing was saved");

    const forced = await setup(["--write-env", "--force"], dir);
    assert.equal(forced.code, 0);
    assert.notEqual(await readFile(path, "utf8"), content);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  }));

Deno.test("setup --new-tools-key rotates only the tools hash", () =>
  inTemp(async (dir) => {
    await setup(["--write-env"], dir);
    const path = join(dir, ".env");
    await writeFile(path, (await readFile(path, "utf8")) + "AUXOT_MODEL=custom:mine\n");
    const before = parseDotEnv(await readFile(path, "utf8"));
    const rotated = await setup(["--new-tools-key", "--write-env"], dir);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.deepEqual(keysIn(rotated.stdout).map((k) => k.slice(0, 3)), ["tls"]);
    const after = parseDotEnv(await readFile(path, "utf8"));
    assert.equal(after.AUXOT_API_KEY_HASH, before.AUXOT_API_KEY_HASH);
    assert.equal(after.AUXOT_ADMIN_KEY_HASH, before.AUXOT_ADMIN_KEY_HASH);
    assert.equal(after.AUXOT_MODEL, "custom:mine");
    assert.notEqual(after.AUXOT_TOOLS_KEY_HASH, before.AUXOT_TOOLS_KEY_HASH);
    assert.equal(await verifyKey(keysIn(rotated.stdout)[0], parsePhc(after.AUXOT_TOOLS_KEY_HASH)!), true);
  }));

Deno.test("setup --fly / --wrangler print secrets commands with the hashes; --cli prints CLI mode", () =>
  inTemp(async (dir) => {
    const fly = await setup(["--fly"], dir);
    assert.equal(fly.code, 0);
    assert.match(fly.stdout, /fly secrets set AUXOT_ADMIN_KEY_HASH='\$argon2id\$v=19\$/);
    assert.match(fly.stdout, /AUXOT_TOOLS_KEY_HASH='\$argon2id/);
    const wrangler = await setup(["--wrangler"], dir);
    assert.equal(wrangler.code, 0);
    assert.match(wrangler.stdout, /printf %s '\$argon2id\$v=19\$[^']+' \| npx wrangler secret put AUXOT_API_KEY_HASH/);
    assert.match(wrangler.stdout, /AUXOT_REDIS_URL/);
    const cli = await setup(["--cli", "--model", "opus", "--router-url", "https://r.example"], dir);
    assert.equal(cli.code, 0);
    assert.match(cli.stdout, /AUXOT_ENGINE=cli/);
    assert.match(cli.stdout, /AUXOT_MODEL=opus/);
    assert.match(cli.stdout, /AUXOT_MAX_PARALLEL=1/);
    assert.match(cli.stdout, /worker:cli --gpu-key-file ~\/\.auxot\/worker\.key --router-url https:\/\/r\.example/);
    assert.doesNotMatch(cli.stdout, /--gpu-key adm_/);
  }));

Deno.test("setup refuses unknown or contradictory flags with exit code 2 naming the flag", () =>
  inTemp(async (dir) => {
    for (
      const [args, pattern] of [[["--frobnicate"], /frobnicate/], [["--cli"], /--model/], [
        ["--fly", "--wrangler"],
        /pick one/,
      ]] as const
    ) {
      const r = await setup([...args], dir);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, pattern);
      assert.deepEqual(keysIn(r.stdout + r.stderr), []);
    }
  }));
