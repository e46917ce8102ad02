/**
 * The worker service installer run as a real subprocess on temporary unit and secret directories (--unit-dir,
 * --env-dir, --no-systemctl): files, modes, the key only in the 0600 file, refusals, list and uninstall; the unit
 * checked by systemd's own `systemd-analyze verify`; and the systemctl steps in order through the injectable runner.
 */
import assert from "node:assert/strict";
import { generateKey } from "../../src/auth/keys.ts";
import { main } from "../../workers/service.ts";

const SCRIPT = new URL("../../workers/service.ts", import.meta.url).pathname;
const PROJECT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

async function service(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    // No --allow-run: with --no-systemctl the installer must not need to run anything.
    args: ["run", "--allow-read", "--allow-write", "--allow-env", SCRIPT, ...args],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
}

Deno.test("worker service: install, refuse, list, uninstall — secrets only in the 0600 file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auxot-service-" });
  try {
    const dirs = ["--unit-dir", `${dir}/units`, "--env-dir", `${dir}/secrets`, "--no-systemctl"];
    const gpuKey = generateKey("admin");
    const toolsKey = generateKey("tools");
    const installed = await service([
      "install",
      "--kind",
      "gpu",
      "--router-url",
      "https://router.example/",
      "--user",
      "auxot",
      "--env",
      "AUXOT_MODELS_DIR=/var/lib/auxot/models",
      ...dirs,
      "--",
      "--name",
      "rig 1",
    ], { AUXOT_GPU_KEY: gpuKey });
    assert.equal(installed.code, 0, installed.out);
    assert.match(installed.out, /then run: systemctl daemon-reload/);
    assert.match(installed.out, /then run: systemctl enable --now auxot-worker-gpu\.service/);
    assert.ok(!installed.out.includes(gpuKey), "the key is never printed");

    const unitPath = `${dir}/units/auxot-worker-gpu.service`;
    const envPath = `${dir}/secrets/worker-gpu.env`;
    const unit = await Deno.readTextFile(unitPath);
    assert.ok(!unit.includes(gpuKey), "the unit holds no secret");
    assert.match(unit, /^User=auxot$/m);
    assert.match(unit, new RegExp(`^WorkingDirectory=${PROJECT}$`, "m"));
    assert.match(unit, /^Environment=AUXOT_ROUTER_URL=https:\/\/router\.example$/m);
    assert.match(unit, new RegExp(`^EnvironmentFile=${envPath}$`, "m"));
    assert.match(unit, new RegExp(`^ExecStart=${Deno.execPath()} task worker:gpu --name "rig 1"$`, "m"));
    assert.match(unit, /^Restart=always$/m);
    assert.equal((await Deno.stat(envPath)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(unitPath)).mode! & 0o777, 0o644);
    const secrets = await Deno.readTextFile(envPath);
    assert.match(secrets, new RegExp(`^AUXOT_GPU_KEY=${gpuKey}$`, "m"));
    assert.match(secrets, /^AUXOT_MODELS_DIR=\/var\/lib\/auxot\/models$/m);

    // systemd's own parser accepts the unit (it checks the ExecStart binary and the sections).
    const analyze = await new Deno.Command("systemd-analyze", {
      args: ["verify", "--man=no", unitPath],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const complaints = new TextDecoder().decode(analyze.stderr).split("\n")
      .filter((l) => l.includes("auxot-worker-gpu.service"));
    assert.deepEqual(complaints, [], "systemd-analyze verify");

    const again = await service(["install", "--kind", "gpu", "--router-url", "https://r.example", ...dirs], {
      AUXOT_GPU_KEY: gpuKey,
    });
    assert.equal(again.code, 1);
    assert.match(again.out, /exists: uninstall it first, or pass --force/);

    const wrongKey = await service([
      "install",
      "--kind",
      "gpu",
      "--name",
      "x",
      "--router-url",
      "https://r.example",
      ...dirs,
    ], {
      AUXOT_GPU_KEY: toolsKey,
    });
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.out, /needs a worker key \(adm_…\)/);
    assert.ok(!wrongKey.out.includes(toolsKey));

    const noKey = await service(["install", "--kind", "tools", "--router-url", "https://r.example", ...dirs]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.out, /No worker key: set AUXOT_TOOLS_KEY/);

    const keyFile = `${dir}/tools.key`;
    await Deno.writeTextFile(keyFile, toolsKey + "\n", { mode: 0o600 });
    // Another checkout (--project) must define the worker's task.
    const project = `${dir}/checkout`;
    await Deno.mkdir(project);
    const toolsArgs = ["install", "--kind", "tools", "--name", "tools-1", "--key-file", keyFile, "--project", project];
    await Deno.writeTextFile(`${project}/deno.json`, JSON.stringify({ tasks: { "worker:gpu": "x" } }));
    const noTask = await service([...toolsArgs, "--router-url", "http://10.0.0.5:8080", ...dirs]);
    assert.equal(noTask.code, 1);
    assert.match(noTask.out, /has no task "worker:tools"/);
    await Deno.writeTextFile(`${project}/deno.json`, JSON.stringify({ tasks: { "worker:tools": "x" } }));
    const tools = await service([
      ...toolsArgs,
      "--router-url",
      "http://10.0.0.5:8080",
      ...dirs,
    ]);
    assert.equal(tools.code, 0, tools.out);
    assert.match(await Deno.readTextFile(`${dir}/secrets/worker-tools-1.env`), /^AUXOT_TOOLS_KEY=tls_/m);

    const listed = await service(["list", ...dirs]);
    assert.equal(listed.code, 0);
    assert.deepEqual(listed.out.trim().split("\n"), [
      "gpu\tgpu\thttps://router.example\tnot checked\tauxot-worker-gpu.service",
      "tools-1\ttools\thttp://10.0.0.5:8080\tnot checked\tauxot-worker-tools-1.service",
    ]);

    const removed = await service(["uninstall", "--name", "gpu", ...dirs]);
    assert.equal(removed.code, 0, removed.out);
    assert.match(removed.out, /then run: systemctl disable --now auxot-worker-gpu\.service/);
    assert.equal(await Deno.stat(envPath).then(() => true, () => false), false);
    assert.equal(await Deno.stat(unitPath).then(() => true, () => false), false);
    assert.equal((await service(["list", ...dirs])).out.trim().split("\n").length, 1);
    const missing = await service(["uninstall", "--name", "gpu", ...dirs]);
    assert.equal(missing.code, 1);
    assert.match(missing.out, /No worker service named "gpu"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker service: systemctl is called to reload, enable and start, then to stop and disable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auxot-service-" });
  try {
    const calls: string[] = [];
    const systemctl = (args: string[]) => {
      calls.push(args.join(" "));
      return Promise.resolve({ code: 0, output: args[0] === "is-active" ? "active\n" : "" });
    };
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    const dirs = ["--unit-dir", `${dir}/units`, "--env-dir", `${dir}/secrets`];
    const env = { AUXOT_GPU_KEY: generateKey("admin"), USER: "someone" };
    assert.equal(
      await main(["install", "--kind", "gpu", "--router-url", "http://r:1", ...dirs], env, io, systemctl),
      0,
    );
    assert.equal(await main(["list", ...dirs], env, io, systemctl), 0);
    assert.equal(await main(["uninstall", "--name", "gpu", ...dirs], env, io, systemctl), 0);
    assert.deepEqual(calls, [
      "daemon-reload",
      "enable --now auxot-worker-gpu.service",
      "is-active auxot-worker-gpu.service",
      "disable --now auxot-worker-gpu.service",
      "daemon-reload",
    ]);
    assert.ok(lines.some((l) => l.startsWith("gpu\tgpu\thttp://r:1\tactive\t")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
