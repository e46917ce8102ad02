/**
 * What every worker program (GPU, CLI, tools) does the same way around its engine: reading the router connection
 * from flags or the environment (with the same messages), the log level, running the poll loop until Ctrl-C or a
 * fatal refusal, and mapping the outcome to an exit code (0 stopped, 1 refused by the router, 2 bad arguments).
 */
import process from "node:process";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { LOG_LEVELS, type Logger, type LogLevel } from "../../src/log.ts";
import type { Engine } from "./engine.ts";
import { FatalWorkerError, type WorkerLoop } from "./worker-loop.ts";

/** A mistake in the worker's flags or environment: printed with the usage, exit code 2. */
export class ArgsError extends Error {}

export interface ConnectionSpec {
  /** The key flag, e.g. "--gpu-key", and its variable, e.g. "AUXOT_GPU_KEY". */
  keyFlag: string;
  keyVariable: string;
  /** The role prefix the key must have, and how to name the key in messages. */
  keyPrefix: "adm_" | "tls_";
  keyName: string;
  /** Where the key comes from, for the "no key" message. */
  keyHint: string;
  usage: string;
}

/** Parses a worker's flags strictly (plus --help); a mistake or --help is an ArgsError carrying the usage. */
export function parseFlags<O extends ParseArgsOptionsConfig>(argv: string[], options: O, usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean" } }, strict: true });
  } catch (err) {
    throw new ArgsError(`${(err as Error).message}\n\n${usage}`);
  }
  if ((parsed.values as { help?: boolean }).help) throw new ArgsError(usage);
  return parsed.values;
}

/**
 * The router URL and key from flag values (preferred) or the environment, validated. The key is best read from a
 * file (`--…-key-file`, `AUXOT_…_KEY_FILE`; readable by its owner only) or the variable: a flag's value is on the
 * process's command line, which every user of the machine can read (`ps`, /proc/PID/cmdline).
 */
export function connectionArgs(
  spec: ConnectionSpec,
  flags: { routerUrl?: string; key?: string; keyFile?: string },
  env: Record<string, string | undefined>,
): { routerUrl: string; key: string; keyFile?: string } {
  const pick = (flag: string | undefined, variable: string) => {
    const value = flag ?? env[variable];
    return value?.trim() ? value.trim() : undefined;
  };
  const routerUrl = pick(flags.routerUrl, "AUXOT_ROUTER_URL");
  if (!routerUrl) {
    throw new ArgsError(
      `No router URL: pass --router-url https://your-router (or set AUXOT_ROUTER_URL).\n\n${spec.usage}`,
    );
  }
  if (!/^https?:\/\/[^\s]+$/.test(routerUrl)) {
    throw new ArgsError(`--router-url must be an http(s) URL, got "${routerUrl}".`);
  }
  const keyFile = pick(flags.keyFile, `${spec.keyVariable}_FILE`);
  if (keyFile && flags.key) throw new ArgsError(`Pass ${spec.keyFlag} or ${spec.keyFlag}-file, not both.`);
  const key = keyFile ? readKeyFile(keyFile, spec) : pick(flags.key, spec.keyVariable);
  if (!key) {
    throw new ArgsError(
      `No ${spec.keyName}: pass ${spec.keyFlag}-file FILE (a file holding ${spec.keyPrefix}..., mode 600) or set ` +
        `${spec.keyVariable}; ${spec.keyHint}`,
    );
  }
  if (!key.startsWith(spec.keyPrefix)) {
    throw new ArgsError(`${spec.keyFlag} must be a ${spec.keyName} (${spec.keyPrefix}...), not a key of another role.`);
  }
  return { routerUrl, key, ...(keyFile ? { keyFile } : {}) };
}

/** A key file: its first line, refused when other users could read it (like ssh does with private keys). */
export function readKeyFile(path: string, spec: ConnectionSpec): string {
  let text: string;
  try {
    const mode = Deno.statSync(path).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      throw new ArgsError(
        `${spec.keyFlag}-file ${path} can be read by other users (mode ${(mode & 0o777).toString(8)}): ` +
          `chmod 600 ${path}`,
      );
    }
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof ArgsError) throw err;
    throw new ArgsError(`${spec.keyFlag}-file ${path}: ${(err as Error).message}`);
  }
  return text.split(/\r?\n/)[0].trim();
}

export function logLevelFrom(env: Record<string, string | undefined>): LogLevel {
  const level = (env.AUXOT_LOG_LEVEL ?? "info").toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new ArgsError(`AUXOT_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}.`);
  return level;
}

/**
 * Runs the loop until it stops: Ctrl-C (or SIGTERM) finishes running jobs, a second one quits at once; a refusal by
 * the router is logged and ends with exit code 1. The engine is disposed in every case.
 */
export async function runUntilStopped(
  loop: WorkerLoop,
  engine: Engine,
  log: Logger,
  running = "jobs",
): Promise<number> {
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) process.exit(130);
    log.info(`stopping: finishing running ${running} (Ctrl-C again to quit now)`, { running: loop.runningJobs });
    void loop.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await loop.run();
    log.info("worker stopped");
    return 0;
  } catch (err) {
    if (err instanceof FatalWorkerError) {
      log.error(err.message, { code: err.code });
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await engine.dispose();
  }
}

/** The `import.meta.main` block of a worker program: parse, run, exit with the code (2 for bad arguments). */
export async function workerMain<A>(
  parse: (argv: string[], env: Record<string, string | undefined>) => A,
  run: (args: A) => Promise<number>,
): Promise<never> {
  try {
    process.exit(await run(parse(process.argv.slice(2), process.env)));
  } catch (err) {
    if (err instanceof ArgsError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}
