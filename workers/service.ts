/**
 * `deno task worker:service install|uninstall|list`: runs an Auxot worker as a systemd service that starts at boot
 * and restarts when it stops. The unit (`auxot-worker-NAME.service`) holds no secret: the worker key lives in an
 * environment file readable by root only (0600, in /etc/auxot), which systemd reads before starting the worker
 * as an unprivileged user. The unit runs `deno task worker:KIND` in this checkout, so the worker's own flags and
 * permissions stay defined in deno.json.
 *
 * For tests and packaging, `--unit-dir` and `--env-dir` point elsewhere than /etc, and `--no-systemctl` writes the
 * files without calling systemctl (printing the commands to run instead).
 */
import { parseArgs } from "node:util";
import { type KeyRole, keyRole } from "../src/auth/keys.ts";

export type WorkerKind = "gpu" | "cli" | "tools";

const KINDS: WorkerKind[] = ["gpu", "cli", "tools"];
const KEY_ROLE: Record<WorkerKind, KeyRole> = { gpu: "admin", cli: "admin", tools: "tools" };
/** How each worker reads its key from the environment (workers/KIND/main.ts: --gpu-key / AUXOT_GPU_KEY for GPU and CLI workers, --tools-key / AUXOT_TOOLS_KEY). */
export const KEY_VARIABLE: Record<WorkerKind, string> = {
  gpu: "AUXOT_GPU_KEY",
  cli: "AUXOT_GPU_KEY", // CLI workers take the same adm_ worker key as GPU workers
  tools: "AUXOT_TOOLS_KEY",
};
const UNIT_PREFIX = "auxot-worker-";
const NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export interface Dirs {
  unitDir: string;
  envDir: string;
}

export interface InstallSpec {
  name: string;
  kind: WorkerKind;
  routerUrl: string;
  key: string;
  user: string;
  projectDir: string;
  deno: string;
  /** Extra variables for the worker (AUXOT_MODELS_DIR, tool credentials...): written to the 0600 file. */
  env: Record<string, string>;
  /** Extra worker flags (not secrets: they appear in the unit and in `ps`). */
  args: string[];
}

/** Runs `systemctl ARGS`; tests and --no-systemctl pass none. */
export type Systemctl = (args: string[]) => Promise<{ code: number; output: string }>;

export class ServiceError extends Error {}

export const unitName = (name: string) => `${UNIT_PREFIX}${name}.service`;
export const envFileName = (name: string) => `worker-${name}.env`;

export function renderUnit(spec: InstallSpec, envFile: string): string {
  const exec = [spec.deno, "task", `worker:${spec.kind}`, ...spec.args].map(execArg).join(" ");
  return [
    `# Written by \`deno task worker:service install\` (Auxot). The worker key is in ${envFile} (0600), not here.`,
    "[Unit]",
    `Description=Auxot ${spec.kind} worker (${spec.name})`,
    "After=network-online.target",
    "Wants=network-online.target",
    `X-Auxot-Kind=${spec.kind}`,
    "",
    "[Service]",
    "Type=simple",
    `User=${spec.user}`,
    `WorkingDirectory=${percent(spec.projectDir)}`,
    `Environment=${execArg(`AUXOT_ROUTER_URL=${spec.routerUrl}`)}`,
    `EnvironmentFile=${percent(envFile)}`,
    `ExecStart=${exec}`,
    "Restart=always",
    "RestartSec=5",
    // A worker finishes its running jobs on SIGTERM (or hands them back after its grace period).
    "KillSignal=SIGTERM",
    "TimeoutStopSec=90",
    "NoNewPrivileges=true",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Paths in a unit are taken whole, but `%` starts a specifier. */
function percent(path: string): string {
  return path.replaceAll("%", "%%");
}

/** systemd's quoting: plain words stay as they are; anything else is double-quoted with `\`, `"` escaped. */
function execArg(value: string): string {
  const escaped = value.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_./:@=,+-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

export function renderEnvFile(spec: InstallSpec): string {
  const lines = [
    "# Auxot worker secrets, read by systemd for " + unitName(spec.name) + ". Keep this file mode 0600.",
    `${KEY_VARIABLE[spec.kind]}=${envValue(spec.key)}`,
    ...Object.entries(spec.env).map(([k, v]) => `${k}=${envValue(v)}`),
  ];
  return lines.join("\n") + "\n";
}

function envValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new ServiceError("environment values cannot contain line breaks");
  if (/^[A-Za-z0-9_./:@=,+-]*$/.test(value)) return value;
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("$", "\\$").replaceAll("`", "\\`")}"`;
}

export function validate(spec: InstallSpec): void {
  if (!NAME.test(spec.name)) {
    throw new ServiceError(`--name "${spec.name}": use lower-case letters, digits and dashes (at most 40).`);
  }
  if (!/^https?:\/\/[^\s"'\\]+$/.test(spec.routerUrl)) {
    throw new ServiceError(`--router-url must be an http(s) URL (got "${spec.routerUrl}").`);
  }
  const role = keyRole(spec.key);
  if (role !== KEY_ROLE[spec.kind]) {
    const wanted = spec.kind === "tools" ? "a tools key (tls_…)" : "a worker key (adm_…)";
    throw new ServiceError(`A ${spec.kind} worker needs ${wanted}; the key given is not one.`);
  }
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(spec.user)) throw new ServiceError(`--user "${spec.user}" is not a user name.`);
  for (const name of Object.keys(spec.env)) {
    if (!ENV_NAME.test(name)) throw new ServiceError(`--env ${name}: variable names are upper-case words.`);
  }
}

export async function install(spec: InstallSpec, dirs: Dirs, options: { force: boolean }): Promise<string[]> {
  validate(spec);
  const tasks = await readTasks(spec.projectDir);
  if (!tasks.includes(`worker:${spec.kind}`)) {
    throw new ServiceError(
      `${spec.projectDir}/deno.json has no task "worker:${spec.kind}": run this from an Auxot checkout (--project).`,
    );
  }
  const unitPath = `${dirs.unitDir}/${unitName(spec.name)}`;
  const envPath = `${dirs.envDir}/${envFileName(spec.name)}`;
  if (!options.force && await exists(unitPath)) {
    throw new ServiceError(`${unitPath} exists: uninstall it first, or pass --force to replace it.`);
  }
  await Deno.mkdir(dirs.envDir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(dirs.unitDir, { recursive: true });
  await writeFileAtomic(envPath, renderEnvFile(spec), 0o600);
  await writeFileAtomic(unitPath, renderUnit(spec, envPath), 0o644);
  return [unitPath, envPath];
}

export async function uninstall(name: string, dirs: Dirs): Promise<string[]> {
  if (!NAME.test(name)) throw new ServiceError(`--name "${name}" is not a worker service name.`);
  const removed: string[] = [];
  for (const path of [`${dirs.unitDir}/${unitName(name)}`, `${dirs.envDir}/${envFileName(name)}`]) {
    try {
      await Deno.remove(path);
      removed.push(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  if (removed.length === 0) throw new ServiceError(`No worker service named "${name}" in ${dirs.unitDir}.`);
  return removed;
}

export interface ServiceEntry {
  name: string;
  unit: string;
  kind: string;
  routerUrl: string;
}

export async function list(dirs: Dirs): Promise<ServiceEntry[]> {
  const entries: ServiceEntry[] = [];
  let files: Deno.DirEntry[] = [];
  try {
    files = await Array.fromAsync(Deno.readDir(dirs.unitDir));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  for (const file of files.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!file.name.startsWith(UNIT_PREFIX) || !file.name.endsWith(".service")) continue;
    const text = await Deno.readTextFile(`${dirs.unitDir}/${file.name}`);
    const field = (re: RegExp) => re.exec(text)?.[1] ?? "?";
    entries.push({
      name: file.name.slice(UNIT_PREFIX.length, -".service".length),
      unit: file.name,
      kind: field(/^X-Auxot-Kind=(\S+)$/m),
      routerUrl: field(/^Environment="?AUXOT_ROUTER_URL=([^"\s]+)"?$/m),
    });
  }
  return entries;
}

async function readTasks(projectDir: string): Promise<string[]> {
  try {
    const config = JSON.parse(await Deno.readTextFile(`${projectDir}/deno.json`)) as {
      tasks?: Record<string, unknown>;
    };
    return Object.keys(config.tasks ?? {});
  } catch {
    throw new ServiceError(`${projectDir} is not an Auxot checkout (no readable deno.json): pass --project DIR.`);
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Written beside the target then renamed, created with its final mode so the secret is never readable by others. */
async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(temp, text, { mode, createNew: true });
    await Deno.chmod(temp, mode); // the umask may have removed bits; never added any
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

const USAGE = `Usage:
  deno task worker:service install --kind gpu|cli|tools --router-url URL [options] [-- worker flags]
  deno task worker:service uninstall --name NAME [options]
  deno task worker:service list [options]

install reads the worker key from --key-file FILE, or from AUXOT_GPU_KEY (gpu, cli) / AUXOT_TOOLS_KEY
(with sudo: \`sudo -E\` keeps it); it never takes the key as a flag (flags land in shell history and ps).

  --name NAME        service name: auxot-worker-NAME.service (default: the kind)
  --user USER        run the worker as USER (default: $SUDO_USER, else $USER)
  --project DIR      the Auxot checkout to run (default: this one)
  --deno PATH        the deno binary (default: the one running this)
  --env NAME=VALUE   an extra variable for the worker, kept in the 0600 file (repeatable)
  --force            replace an existing service of that name
  --unit-dir DIR     where units go (default /etc/systemd/system)
  --env-dir DIR      where secret files go (default /etc/auxot)
  --no-systemctl     only write or remove files; print the systemctl commands to run`;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export async function main(
  argv: string[],
  env: Record<string, string | undefined>,
  io: Io,
  systemctl?: Systemctl,
): Promise<number> {
  const [command, ...rest] = argv;
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        kind: { type: "string" },
        name: { type: "string" },
        "router-url": { type: "string" },
        "key-file": { type: "string" },
        user: { type: "string" },
        project: { type: "string" },
        deno: { type: "string" },
        env: { type: "string", multiple: true },
        force: { type: "boolean" },
        "unit-dir": { type: "string" },
        "env-dir": { type: "string" },
        "no-systemctl": { type: "boolean" },
        help: { type: "boolean" },
      },
    }));
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help || !command || command === "help") {
    io.out(USAGE);
    return command || values.help ? 0 : 2;
  }
  const dirs: Dirs = {
    unitDir: values["unit-dir"] ?? "/etc/systemd/system",
    envDir: values["env-dir"] ?? "/etc/auxot",
  };
  const run = values["no-systemctl"] ? undefined : systemctl;
  const ctl = async (args: string[]) => {
    if (!run) return io.out(`  then run: systemctl ${args.join(" ")}`);
    const result = await run(args);
    if (result.code !== 0) throw new ServiceError(`systemctl ${args.join(" ")} failed: ${result.output.trim()}`);
  };

  try {
    if (command === "install") {
      const kind = values.kind as WorkerKind;
      if (!KINDS.includes(kind)) throw new ServiceError("--kind must be gpu, cli or tools.");
      const key = values["key-file"]
        ? (await Deno.readTextFile(values["key-file"])).trim()
        : env[KEY_VARIABLE[kind]]?.trim();
      if (!key) {
        throw new ServiceError(`No worker key: set ${KEY_VARIABLE[kind]} (sudo -E keeps it) or pass --key-file FILE.`);
      }
      const extra: Record<string, string> = {};
      for (const pair of values.env ?? []) {
        const at = pair.indexOf("=");
        if (at <= 0) throw new ServiceError(`--env ${pair}: write NAME=VALUE.`);
        extra[pair.slice(0, at)] = pair.slice(at + 1);
      }
      const spec: InstallSpec = {
        name: values.name ?? kind,
        kind,
        routerUrl: (values["router-url"] ?? env.AUXOT_ROUTER_URL ?? "").replace(/\/+$/, ""),
        key,
        user: values.user ?? env.SUDO_USER ?? env.USER ?? "root",
        projectDir: values.project ?? new URL("..", import.meta.url).pathname.replace(/\/$/, ""),
        deno: values.deno ?? Deno.execPath(),
        env: extra,
        args: positionals,
      };
      const [unitPath, envPath] = await install(spec, dirs, { force: values.force ?? false });
      io.out(`Wrote ${unitPath}`);
      io.out(`Wrote ${envPath} (mode 0600: holds the worker key)`);
      await ctl(["daemon-reload"]);
      await ctl(["enable", "--now", unitName(spec.name)]);
      io.out(`Worker service ${unitName(spec.name)} installed. Logs: journalctl -u ${unitName(spec.name)} -f`);
      return 0;
    }
    if (command === "uninstall") {
      const name = values.name ?? values.kind;
      if (!name) throw new ServiceError("Which one? Pass --name NAME (see `list`).");
      await ctl(["disable", "--now", unitName(name)]);
      for (const path of await uninstall(name, dirs)) io.out(`Removed ${path}`);
      await ctl(["daemon-reload"]);
      return 0;
    }
    if (command === "list") {
      const entries = await list(dirs);
      if (entries.length === 0) io.out(`No Auxot worker services in ${dirs.unitDir}.`);
      for (const e of entries) {
        const state = run ? (await run(["is-active", e.unit])).output.trim() || "unknown" : "not checked";
        io.out(`${e.name}\t${e.kind}\t${e.routerUrl}\t${state}\t${e.unit}`);
      }
      return 0;
    }
    io.err(`Unknown command "${command}".\n\n${USAGE}`);
    return 2;
  } catch (err) {
    if (err instanceof ServiceError) {
      io.err(`worker:service: ${err.message}`);
      return 1;
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      io.err(`worker:service: permission denied (${(err as Error).message}): run it with sudo -E.`);
      return 1;
    }
    throw err;
  }
}

const systemctl: Systemctl = async (args) => {
  const result = await new Deno.Command("systemctl", { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: result.code, output: text.decode(result.stdout) + text.decode(result.stderr) };
};

if (import.meta.main) {
  Deno.exit(
    await main(Deno.args, Deno.env.toObject(), { out: console.log, err: console.error }, systemctl),
  );
}
