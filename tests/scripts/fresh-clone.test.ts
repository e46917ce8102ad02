/**
 * A new user's first commands on a fresh clone (git clone of this checkout's HEAD into a temporary directory, so
 * nothing installed here helps): `deno task setup --fly` with only a Deno on PATH, the same through `npx deno` with
 * only Node/npm, a worker task's one-line instruction before any npm install, and `npm ci` leaving the tree clean.
 * Needs git, npm and the npm registry (Deno fetches the router's packages itself; npx fetches Deno).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePhc } from "../../src/auth/keys.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function run(cmd: string, args: string[], options: { cwd: string; env: Record<string, string> }) {
  // The inherited environment minus what could point at this checkout's tools (PATH is given; no DENO_*/npm_*
  // variables), keeping what reaches the registry here (certificates, proxies).
  const inherited = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !/^(DENO_|npm_|NODE_PATH$|PATH$)/i.test(k)),
  );
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: { ...inherited, ...options.env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

/** The directory on PATH holding `name` (node, npx, git), or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(join(dir, name)).isFile) return dir;
    } catch { /* not here */ }
  }
  return undefined;
}

function spawnWithInherited(cmd: string, args: string[], cwd: string, env: Record<string, string>) {
  const inherited = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !/^(DENO_|npm_|NODE_PATH$|PATH$)/i.test(k)),
  );
  return new Deno.Command(cmd, {
    args,
    cwd,
    env: { ...inherited, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Reads the router's JSON log (piped: JSON, not the terminal's human lines) until "router listening". */
async function listeningPort(stream: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the router exited before listening:\n${buffer}`);
    buffer += value;
    const match = /"msg":"router listening","url":"http:\/\/[^:]+:(\d+)"/.exec(buffer);
    if (match) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return Number(match[1]);
    }
  }
}

async function withClone(fn: (clone: string, tmp: string) => Promise<void>) {
  const tmp = await mkdtemp(join(tmpdir(), "auxot-clone-"));
  try {
    const clone = join(tmp, "auxot");
    const cloned = await run("git", ["clone", "--quiet", ROOT, clone], {
      cwd: tmp,
      env: { PATH: Deno.env.get("PATH") ?? "" },
    });
    assert.equal(cloned.code, 0, cloned.stderr);
    await fn(clone, tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The `fly secrets set NAME='value' \ …` command as a map, checking each value is an Argon2id PHC string. */
function flySecrets(stdout: string): Record<string, string> {
  const start = stdout.indexOf("fly secrets set ");
  assert.ok(start >= 0, `no fly secrets set line in:\n${stdout}`);
  const lines: string[] = [];
  for (const line of stdout.slice(start).split("\n")) {
    lines.push(line.trim());
    if (!line.trimEnd().endsWith("\\")) break;
  }
  const command = lines.join(" ");
  const secrets = Object.fromEntries([...command.matchAll(/([A-Z_]+)='([^']*)'/g)].map((m) => [m[1], m[2]]));
  for (const name of ["AUXOT_ADMIN_KEY_HASH", "AUXOT_API_KEY_HASH"]) {
    assert.ok(secrets[name], `${name} in: ${command}`);
    assert.ok(parsePhc(secrets[name]!), `${name} is an Argon2id PHC string: ${secrets[name]}`);
  }
  return secrets;
}

const git = onPath("git");
const npx = onPath("npx");

Deno.test({
  name:
    "fresh clone, only a Deno on PATH: setup --fly prints valid fly secrets, start serves with them; tree stays clean",
  ignore: !git,
}, () =>
  withClone(async (clone, tmp) => {
    // A "global" Deno: this very binary under the name `deno` in a bin folder; nothing else of ours on PATH.
    const bin = join(tmp, "bin");
    await Deno.mkdir(bin);
    await symlink(Deno.execPath(), join(bin, "deno"));
    const env = { PATH: `${bin}:${git}`, HOME: tmp, DENO_DIR: join(tmp, "deno-dir"), NO_COLOR: "1" };
    const setup = await run("deno", ["task", "setup", "--fly"], { cwd: clone, env });
    assert.equal(setup.code, 0, setup.stderr);
    const secrets = flySecrets(setup.stdout);
    // deno task start serves with the printed hashes, still without any npm install.
    const router = spawnWithInherited("deno", ["task", "--quiet", "start"], clone, {
      ...env,
      AUXOT_ADMIN_KEY_HASH: secrets.AUXOT_ADMIN_KEY_HASH!,
      AUXOT_API_KEY_HASH: secrets.AUXOT_API_KEY_HASH!,
      AUXOT_HOST: "127.0.0.1",
      AUXOT_PORT: "0",
      AUXOT_ENV_FILE: join(tmp, "absent.env"),
    });
    try {
      const port = await listeningPort(router.stdout);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      router.kill("SIGTERM");
      await router.status;
    }
    const models = await run("deno", ["task", "models", "qwen3.5-35b"], { cwd: clone, env });
    assert.equal(models.code, 0, models.stderr);
    // A worker needs npm packages: one line saying what to run, not a module-resolution trace.
    const worker = await run("deno", ["task", "--quiet", "worker:gpu", "--help"], { cwd: clone, env });
    assert.equal(worker.code, 1);
    assert.match(worker.stderr, /needs its npm packages \(node-llama-cpp.*node bin\/auxot-worker-install\.mjs/);
    const status = await run("git", ["status", "--porcelain"], { cwd: clone, env });
    assert.equal(status.stdout, "");
  }));

Deno.test({
  name: "fresh clone, only Node/npm: npx deno task setup --fly prints valid fly secrets",
  ignore: !git || !npx,
}, () =>
  withClone(async (clone, tmp) => {
    const env = {
      PATH: [...new Set([npx!, git!, "/usr/bin", "/bin"])].join(":"),
      HOME: Deno.env.get("HOME") ?? tmp, // npm's cache: npx may reuse a Deno it fetched before
      DENO_DIR: join(tmp, "deno-dir"),
      NO_COLOR: "1",
    };
    assert.equal((await run("sh", ["-c", "command -v deno || true"], { cwd: clone, env })).stdout, "");
    const setup = await run("npx", ["--yes", "deno", "task", "setup", "--fly"], { cwd: clone, env });
    assert.equal(setup.code, 0, setup.stderr);
    flySecrets(setup.stdout);
    const status = await run("git", ["status", "--porcelain"], { cwd: clone, env });
    assert.equal(status.stdout, "");
  }));

Deno.test({
  name: "fresh clone: npm ci accepts the lockfile and leaves git status empty (router-only install)",
  ignore: !git || !npx,
}, () =>
  withClone(async (clone, tmp) => {
    const env = { PATH: [...new Set([npx!, git!, "/usr/bin", "/bin"])].join(":"), HOME: Deno.env.get("HOME") ?? tmp };
    // npm ci checks the whole lockfile against package.json (every workspace, every platform's optional package)
    // before installing; the router-only selection keeps this test to a few MB.
    const ci = await run("npm", [
      "ci",
      "--omit=dev",
      "--workspaces=false",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
    ], {
      cwd: clone,
      env,
    });
    assert.equal(ci.code, 0, ci.stderr);
    const status = await run("git", ["status", "--porcelain"], { cwd: clone, env });
    assert.equal(status.stdout, "");
    const installed = [...Deno.readDirSync(join(clone, "node_modules"))].map((e) => e.name).sort();
    for (const name of ["hash-wasm", "itty-router", "zod"]) assert.ok(installed.includes(name), name);
    // No worker runtime, GPU build or development tool (npm may add a stray shared transitive, e.g. semver).
    for (const name of ["node-llama-cpp", "@node-llama-cpp", "deno", "wrangler", "auxot-llama-linux-x64-cuda"]) {
      assert.ok(!installed.includes(name), name);
    }
  }));
