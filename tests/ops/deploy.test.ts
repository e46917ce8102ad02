/**
 * Deployment files: the Dockerfile's own start command and health check run for real (read from the Dockerfile,
 * with this machine's deno, without write permission), fly.toml agrees with the image (port, health path, no
 * auto-stop with the embedded store), and the start-up checks for Fly.io and Deno Deploy.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { deploymentChecks } from "../../src/ops/deploy-checks.ts";
import { TEST_ENV, testKeys } from "../helpers/router.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (file: string) => Deno.readTextFile(new URL(file, ROOT));

/** A JSON-array instruction of the Dockerfile (CMD, or HEALTHCHECK's CMD), continuation lines joined. */
async function dockerInstruction(prefix: RegExp): Promise<string[]> {
  const text = (await read("Dockerfile")).replace(/\\\n\s*/g, " ");
  const line = text.split("\n").find((l) => prefix.test(l));
  assert.ok(line, `Dockerfile has no ${prefix}`);
  return JSON.parse(line.slice(line.indexOf("[")));
}

function run(args: string[], env: Record<string, string>): Deno.Command {
  return new Deno.Command(Deno.execPath(), { args, env, cwd: ROOT.pathname, stdout: "piped", stderr: "piped" });
}

Deno.test({
  name: "deploy: the image's start command serves /health without write access; its health check agrees",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const cmd = await dockerInstruction(/^CMD /);
  const check = await dockerInstruction(/^HEALTHCHECK /);
  assert.equal(cmd[0], "deno");
  assert.ok(!cmd.some((a) => a.startsWith("--allow-write")), "the router runs without write permission");
  assert.equal(check[0], "deno");
  const keys = await testKeys();
  const dir = await Deno.makeTempDir({ prefix: "auxot-image-" });
  const env = {
    ...keys.env,
    AUXOT_MODEL: "custom:tiny",
    AUXOT_HOST: "127.0.0.1",
    AUXOT_PORT: "0",
    AUXOT_ENV_FILE: `${dir}/absent.env`,
    NO_COLOR: "1",
  };
  const router = run(cmd.slice(1), env).spawn();
  try {
    const port = await listeningPort(router.stdout);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).store, "embedded");
    const probe = await run(check.slice(1), { AUXOT_PORT: String(port), NO_COLOR: "1" }).output();
    assert.equal(probe.code, 0, new TextDecoder().decode(probe.stderr));
  } finally {
    router.kill("SIGTERM");
    await router.status;
    await Deno.remove(dir, { recursive: true });
  }
  const down = await run(check.slice(1), { AUXOT_PORT: "1", NO_COLOR: "1" }).output();
  assert.equal(down.code, 1, "the health check fails when nothing answers");
});

/** Reads the router's JSON log until "router listening", returning its port; drains the rest in the background. */
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

Deno.test("deploy: fly.toml matches the image and keeps the embedded store's machine running", async () => {
  const fly = await read("fly.toml");
  const docker = await read("Dockerfile");
  const setting = (name: string) => new RegExp(`^\\s*${name}\\s*=\\s*(.+?)\\s*$`, "m").exec(fly)?.[1];
  assert.equal(setting("internal_port"), "8080");
  assert.equal(setting("AUXOT_PORT"), '"8080"');
  assert.match(docker, /^EXPOSE 8080$/m);
  assert.match(docker, /AUXOT_PORT=8080/);
  assert.equal(setting("path"), '"/health"');
  assert.equal(setting("auto_stop_machines"), '"off"');
  assert.equal(setting("min_machines_running"), "1");
  assert.equal(setting("dockerfile"), '"Dockerfile"');
  assert.match(docker, /^USER deno$/m, "the router runs as a non-root user");
  const ignore = await read(".dockerignore");
  assert.match(ignore, /^\*$/m);
  assert.match(ignore, /^!src\/$/m);
  assert.match(ignore, /^\.env$/m);
});

Deno.test("deploy: start-up checks warn on Fly.io and refuse Deno Deploy with the embedded store", async () => {
  const keys = await testKeys();
  const embedded = loadConfig({ ...TEST_ENV, ...keys.env });
  const shared = loadConfig({
    ...TEST_ENV,
    ...keys.env,
    AUXOT_REDIS_URL: "https://example.upstash.io",
    AUXOT_REDIS_TOKEN: "t0ken",
  });
  assert.deepEqual(deploymentChecks({}, embedded), []);

  const fly = deploymentChecks({ FLY_APP_NAME: "my-auxot" }, embedded);
  assert.equal(fly.length, 1);
  assert.equal(fly[0].level, "warn");
  assert.match(fly[0].message, /auto_stop_machines = "off"/);
  assert.match(fly[0].message, /fly scale count 1/);
  assert.deepEqual(deploymentChecks({ FLY_APP_NAME: "my-auxot" }, shared), []);

  const deploy = deploymentChecks({ DENO_DEPLOYMENT_ID: "abc" }, embedded);
  assert.equal(deploy[0].level, "refuse");
  assert.match(deploy[0].message, /AUXOT_REDIS_URL/);
  assert.deepEqual(deploymentChecks({ DENO_DEPLOYMENT_ID: "abc" }, shared), []);
});
