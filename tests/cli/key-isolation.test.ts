/**
 * A CLI worker with built-in CLI tools on must not hand its key to the model: the caller asks the (real) Claude Code,
 * through the scripted upstream model, to run Bash that reads every /proc/PID/environ and cmdline it can see, its
 * parent's, and the worker's key file. The worker is a real process started the recommended way (--gpu-key-file),
 * with the key also in its environment (AUXOT_GPU_KEY), so both places are tried. The test first checks that the key
 * is really there to find from outside the isolation (so it can fail).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { eventually, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ClaudeCodeScriptedEngine } from "./claude-code-scripted.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLAUDE = join(ROOT, "node_modules/.bin/claude");

Deno.test({
  name: "CLI worker with CLI tools: the model cannot read the worker key (environ, cmdline, key file)",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-key-isolation-"));
  const upstream = await startDenoRouter();
  const scripted = new ClaudeCodeScriptedEngine({ slots: 2 });
  const upstreamWorker = startWorker(upstream, scripted, { key: upstream.keys.admin });
  const router = await startDenoRouter({
    AUXOT_ENGINE: "cli",
    AUXOT_MODEL: "opus",
    AUXOT_MAX_PARALLEL: "1",
    AUXOT_CLI_TOOLS: "Bash",
  });
  const key = router.keys.admin;
  const keyFile = join(dir, "worker.key");
  await Deno.writeTextFile(keyFile, `${key}\n`, { mode: 0o600 });
  await Deno.chmod(keyFile, 0o600);
  const worker = new Deno.Command(join(ROOT, "node_modules/deno/deno"), {
    args: [
      "run",
      "-A",
      join(ROOT, "workers/cli/main.ts"),
      "--gpu-key-file",
      keyFile,
      "--router-url",
      router.url,
      "--claude-path",
      CLAUDE,
      "--work-dir",
      dir,
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: dir,
      ANTHROPIC_BASE_URL: upstream.url,
      ANTHROPIC_API_KEY: upstream.keys.api,
      CLAUDE_CODE_MAX_RETRIES: "0",
      AUXOT_GPU_KEY: key,
      AUXOT_LOG_LEVEL: "warn",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = worker.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  (async () => {
    for (;;) {
      const { done, value } = await stderr.read();
      if (done) break;
      log += value;
    }
  })();
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 1,
      30_000,
      "the CLI worker",
    );
    // Control: from outside the isolation, the worker's environment does hold the key.
    const environ = await Deno.readTextFile(`/proc/${worker.pid}/environ`);
    assert.ok(environ.includes(key), "the test would not notice a leak");

    const command = [
      "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/$PPID/environ /proc/$PPID/cmdline; do",
      '  echo "== $f"; tr "\\0" "\\n" < "$f" 2>&1; done',
      `echo "== key file"; cat ${keyFile} 2>&1; echo "key file bytes: $(wc -c < ${keyFile} 2>&1)"`,
      `echo "== pids: $(ls /proc | grep -cE '^[0-9]+$')"`,
      `umount ${keyFile} 2>&1 || echo "umount refused"`,
      `cat ${keyFile} 2>&1`,
    ].join("\n");
    const openai = new OpenAI({ apiKey: router.keys.api, baseURL: `${router.url}/v1`, maxRetries: 0 });
    const answer = await openai.chat.completions.create({
      model: "m",
      messages: [{
        role: "user",
        content: `tool Bash ${JSON.stringify({ command, description: "look for the worker key" })}`,
      }],
    });
    const output = answer.choices[0].message.content ?? "";
    if (Deno.env.get("DEBUG_CLI")) console.error(output);
    assert.match(output, /^results: /, output.slice(0, 500));
    assert.match(output, /== \/proc\/1\/cmdline/, "the CLI could read /proc (its own namespace's)");
    assert.match(output, /key file bytes: 0/, "the key file reads as empty");
    assert.match(output, /umount refused/);
    assert.ok(!output.includes(key.slice(4, 24)), "the worker key leaked to the model");
    assert.ok(!output.includes("AUXOT_GPU_KEY"), "the worker's environment was visible");
    const pids = Number(/== pids: (\d+)/.exec(output)?.[1]);
    assert.ok(pids > 0 && pids < 10, `${pids} processes visible: the worker's are not among them`);
  } finally {
    worker.kill("SIGTERM");
    await worker.status;
    await upstreamWorker.stop();
    await router.close();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
    if (Deno.env.get("DEBUG_CLI")) console.error(log);
  }
});
