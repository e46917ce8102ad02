/**
 * The CLI worker: `deno task worker:cli --gpu-key-file FILE --router-url https://router.example`.
 * Serves the router's jobs through the Claude Code CLI (a subscription or an API key), one CLI process per job.
 * The router must run in CLI mode (AUXOT_ENGINE=cli); its policy names the model and the built-in CLI tools the
 * operator enabled (none by default). Read docs/cli-workers.md first: serving a subscription through an API is
 * likely against its terms.
 * Ctrl-C finishes running jobs (or hands them back after a grace period) and exits cleanly.
 */
import { hostname } from "node:os";
import { createLogger, logFormatFrom, type LogLevel } from "../../src/log.ts";
import { WorkerLoop } from "../common/worker-loop.ts";
import {
  ArgsError,
  connectionArgs,
  logLevelFrom,
  parseFlags,
  runUntilStopped,
  workerMain,
} from "../common/worker-main.ts";
import { CliEngine } from "./cli-engine.ts";

const USAGE = `Usage: deno task worker:cli --gpu-key-file FILE --router-url https://router.example [options]

  --gpu-key-file FILE   file holding the worker key (or AUXOT_GPU_KEY_FILE; mode 600), or set AUXOT_GPU_KEY
  --gpu-key KEY         (avoid: a flag is visible to every user in ps) worker key from \`deno task setup --cli\` (or AUXOT_GPU_KEY)
  --router-url URL      the router's base URL (or AUXOT_ROUTER_URL)
  --claude-path PATH    the Claude Code executable (or AUXOT_CLAUDE_PATH; default: "claude" on PATH)
  --pass-env NAMES      extra environment variables to pass to the CLI, comma-separated
                        (ANTHROPIC_*, CLAUDE_CODE_* such as CLAUDE_CODE_OAUTH_TOKEN, AWS_*, proxies pass already)
  --work-dir DIR        where per-job directories are made (default: the system temp folder)
  --name NAME           how the dashboard shows this worker (default: the host name)

Built-in CLI tools are chosen on the router (AUXOT_CLI_TOOLS), not here. Authenticate the CLI with
CLAUDE_CODE_OAUTH_TOKEN (from \`claude setup-token\`) or ANTHROPIC_API_KEY in this worker's environment.`;

export const WORKER_VERSION = "0.1.0";

export interface CliWorkerArgs {
  key: string;
  /** Where the key came from: covered from the CLI when it runs built-in tools. */
  keyFile?: string;
  routerUrl: string;
  claudePath: string;
  passEnv: string[];
  workDir?: string;
  name: string;
  logLevel: LogLevel;
}

const CLI_CONNECTION = {
  keyFlag: "--gpu-key",
  keyVariable: "AUXOT_GPU_KEY",
  keyPrefix: "adm_",
  keyName: "worker key",
  keyHint: "`deno task setup --cli` creates one.",
  usage: USAGE,
} as const;

export function parseCliWorkerArgs(argv: string[], env: Record<string, string | undefined>): CliWorkerArgs {
  const values = parseFlags(argv, {
    "gpu-key": { type: "string" },
    "gpu-key-file": { type: "string" },
    "router-url": { type: "string" },
    "claude-path": { type: "string" },
    "pass-env": { type: "string" },
    "work-dir": { type: "string" },
    name: { type: "string" },
  }, USAGE);
  const { routerUrl, key, keyFile } = connectionArgs(
    CLI_CONNECTION,
    { routerUrl: values["router-url"], key: values["gpu-key"], keyFile: values["gpu-key-file"] },
    env,
  );
  const passEnv = (values["pass-env"] ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  for (const name of passEnv) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ArgsError(`--pass-env: "${name}" is not a variable name.`);
    if (name.startsWith("AUXOT_")) {
      throw new ArgsError(`--pass-env: ${name} is a router setting; it never reaches the CLI.`);
    }
  }
  const logLevel = logLevelFrom(env);
  return {
    key,
    ...(keyFile ? { keyFile } : {}),
    routerUrl,
    claudePath: values["claude-path"] ?? (env.AUXOT_CLAUDE_PATH || "claude"),
    passEnv,
    ...(values["work-dir"] ? { workDir: values["work-dir"] } : {}),
    name: values.name ?? hostname(),
    logLevel,
  };
}

export async function runCliWorker(args: CliWorkerArgs): Promise<number> {
  const log = createLogger(
    args.logLevel,
    (line) => console.error(line),
    { worker: "cli" },
    logFormatFrom(
      Deno.env.toObject(),
      Deno.stderr.isTerminal(),
    ),
  );
  // Nothing this process starts inherits the key (the CLI's environment is an allowlist anyway).
  Deno.env.delete("AUXOT_GPU_KEY");
  const engine = new CliEngine({
    claudePath: args.claudePath,
    passEnv: args.passEnv,
    secrets: [args.key],
    ...(args.keyFile ? { hiddenPaths: [Deno.realPathSync(args.keyFile)] } : {}),
    ...(args.workDir ? { workDir: args.workDir } : {}),
    log,
  });
  try {
    const version = await engine.probe();
    log.info("claude code found", { path: args.claudePath, version });
  } catch (err) {
    console.error(
      `${(err as Error).message}\nInstall it (npm install -g @anthropic-ai/claude-code) or pass --claude-path.`,
    );
    return 2;
  }
  const loop = new WorkerLoop({
    routerUrl: args.routerUrl,
    key: args.key,
    engine,
    log,
    name: args.name,
    version: WORKER_VERSION,
  });
  log.info("worker starting", { id: loop.id, router: args.routerUrl, engine: "claude-code" });
  return await runUntilStopped(loop, engine, log);
}

if (import.meta.main) await workerMain(parseCliWorkerArgs, runCliWorker);
