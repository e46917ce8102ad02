/**
 * With built-in CLI tools on (AUXOT_CLI_TOOLS), the model runs commands on the worker machine as the worker's user —
 * and that user can read the worker's own process (/proc/PID/environ, cmdline, fd, mem) and the worker's key file.
 * A caller could then read the `adm_` key and become a worker. So such a CLI runs isolated (Linux, util-linux):
 *
 *   unshare --user --map-root-user --pid --fork --kill-child --mount --mount-proc
 *     → a new PID namespace with its own /proc: the worker and every process outside are not there to read;
 *     → a new mount namespace where the key file is covered by /dev/null;
 *   setpriv --bounding-set=-all --inh-caps=-all --no-new-privs
 *     → the CLI keeps no capability, so it cannot unmount the cover or mount anything.
 *
 * Network, the job directory and the rest of the file system stay as they are: this hides the worker's secrets from
 * the CLI, it is not a sandbox for the machine (docs/cli-workers.md says so). Where it cannot work (no user
 * namespaces, no util-linux), a worker refuses a policy with CLI tools rather than run them unisolated.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";

export interface Isolation {
  /** The command line that runs `command args` isolated. */
  wrap(command: string, args: string[]): { command: string; args: string[] };
}

// $1 setpriv, $2 mount, then the paths to cover, "--", and the command.
const SCRIPT = [
  'setpriv="$1"; mount="$2"; shift 2',
  'while [ "$1" != "--" ]; do',
  '  if [ -d "$1" ]; then "$mount" -t tmpfs -o size=1k,mode=000 none "$1" || exit 97;',
  '  else "$mount" --bind /dev/null "$1" || exit 97; fi',
  "  shift",
  "done",
  "shift",
  'exec "$setpriv" --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"',
].join("\n");

function which(name: string, path: string): string | undefined {
  for (const dir of path.split(":").filter(Boolean)) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/** Checks that isolation works here (by running `true` isolated); a reason when it does not. */
export async function probeIsolation(hidden: string[], path: string): Promise<Isolation | string> {
  if (Deno.build.os !== "linux") return `the CLI can only be isolated on Linux (this is ${Deno.build.os})`;
  const tools = { unshare: which("unshare", path), setpriv: which("setpriv", path), mount: which("mount", path) };
  const sh = which("sh", path);
  const missing = Object.entries(tools).filter(([, p]) => !p).map(([n]) => n);
  if (missing.length > 0 || !sh) return `${[...missing, ...(sh ? [] : ["sh"])].join(", ")} not found on PATH`;
  const isolation: Isolation = {
    wrap: (command, args) => ({
      command: tools.unshare!,
      args: [
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount",
        "--mount-proc",
        "--",
        sh,
        "-c",
        SCRIPT,
        "auxot-cli-isolation",
        tools.setpriv!,
        tools.mount!,
        ...hidden.filter((p) => existsSync(p)),
        "--",
        command,
        ...args,
      ],
    }),
  };
  const probe = isolation.wrap(which("true", path) ?? "/bin/true", []);
  const failure = await new Promise<string | undefined>((resolve) => {
    execFile(probe.command, probe.args, { timeout: 10_000, env: { PATH: path } }, (err, _out, stderr) => {
      resolve(err ? (String(stderr).trim() || err.message).slice(0, 300) : undefined);
    });
  });
  return failure ? `isolating a process failed here (user namespaces may be disabled): ${failure}` : isolation;
}
