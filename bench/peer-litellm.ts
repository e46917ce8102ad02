/**
 * The second peer gateway: the LiteLLM proxy (Python, from PyPI), pinned, installed into its own virtual
 * environment under bench/peer-litellm/.venv on first use, run offline against the mock engine and bound to
 * 127.0.0.1. Where it cannot be installed (no PyPI: this project's build machine reaches only the npm registry and
 * Debian's apt, and Debian packages no LiteLLM) the reason is returned and the bench reports LiteLLM as NOT
 * MEASURED; nothing stands in for it.
 */
import { join } from "node:path";
import { freePort, getText, spawnChild, tail, waitFor } from "./lib/process.ts";
import { benchTempDir, boundToLoopbackOnly, ROOT, type Service } from "./stack.ts";

export const LITELLM_VERSION = "1.55.10";
const DIR = join(ROOT, "bench/peer-litellm");
const VENV = join(DIR, ".venv");
const BIN = join(VENV, "bin/litellm");
/** The proxy's master key (a local test value): callers send it as their Bearer token. */
export const LITELLM_KEY = "sk-bench-local";

async function run(command: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  try {
    const out = await new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    return { ok: out.success, output: text.trim() };
  } catch (err) {
    return { ok: false, output: (err as Error).message };
  }
}

async function installedVersion(): Promise<string | undefined> {
  const out = await run(
    join(VENV, "bin/python"),
    ["-c", "import importlib.metadata as m; print(m.version('litellm'))"],
    30_000,
  );
  return out.ok ? out.output.split("\n").at(-1) : undefined;
}

/** Installs the pinned proxy unless present. Returns why it is not usable, or undefined when it is. */
export async function ensureLiteLLM(allowInstall: boolean, log: (line: string) => void): Promise<string | undefined> {
  if (await installedVersion() === LITELLM_VERSION) return undefined;
  if (!allowInstall) return "bench/peer-litellm is not installed and installing was not allowed (--no-peer-install)";
  log(`installing the LiteLLM proxy ${LITELLM_VERSION} into bench/peer-litellm/.venv (pip, first run only)…`);
  const venv = await run("python3", ["-m", "venv", VENV], 120_000);
  if (!venv.ok) return `python3 -m venv failed: ${venv.output.slice(-300)}`;
  const pip = await run(join(VENV, "bin/pip"), [
    "install",
    "--disable-pip-version-check",
    "--retries",
    "0",
    "--timeout",
    "15",
    `litellm[proxy]==${LITELLM_VERSION}`,
  ], 600_000);
  if (!pip.ok) {
    const apt = await run("apt-cache", ["search", "--names-only", "litellm"], 30_000);
    const lines = pip.output.split("\n").filter((l) => l.trim());
    const lastLine = lines.find((l) => l.startsWith("ERROR")) ?? lines.at(-1) ?? "";
    return `pip could not install litellm[proxy]==${LITELLM_VERSION} (neither PyPI nor this machine's local package ` +
      `mirrors have it: ` +
      `"${lastLine.slice(0, 200)}"); Debian apt has ${
        apt.output ? `only: ${apt.output.slice(0, 200)}` : "no litellm package"
      }`;
  }
  return await installedVersion() === LITELLM_VERSION ? undefined : "pip ran but the pinned litellm is not importable";
}

/** The proxy with one model, `bench`, forwarded to the mock engine as an OpenAI-compatible provider. */
export async function startLiteLLM(mockUrl: string): Promise<Service> {
  const port = freePort();
  const config = join(await benchTempDir(), "litellm.yaml");
  await Deno.writeTextFile(
    config,
    [
      "model_list:",
      "  - model_name: bench",
      "    litellm_params:",
      "      model: openai/bench",
      `      api_base: ${mockUrl}/v1`,
      "      api_key: dummy",
      "general_settings:",
      `  master_key: ${LITELLM_KEY}`,
      "litellm_settings:",
      "  telemetry: false",
      "",
    ].join("\n"),
  );
  const child = spawnChild("litellm", BIN, ["--config", config, "--host", "127.0.0.1", "--port", String(port)], {
    cwd: DIR,
    env: { LITELLM_LOCAL_MODEL_COST_MAP: "True", NO_DOCS: "True", LITELLM_LOG: "ERROR" },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "the LiteLLM proxy to answer",
    async () => {
      const { status } = await getText(`${url}/health/liveliness`, {}, 2_000);
      return status === 200 ? true : undefined;
    },
    120_000,
    child,
  );
  if (!boundToLoopbackOnly(port)) {
    await child.stop();
    throw new Error(`the LiteLLM proxy listened beyond 127.0.0.1 on port ${port}: stopped it\n${tail(child)}`);
  }
  return { name: "litellm", url, port, pid: child.pid, stop: child.stop, logs: child.output };
}
