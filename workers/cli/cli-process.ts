/**
 * One Claude Code CLI process per job: its command line, its environment, and its life (spawned in its own process
 * group so that a cancel kills the CLI and everything it started).
 *
 * The command line runs the CLI headless (`-p`) with stream-json output and partial messages (token-level text),
 * Claude Code's own system prompt replaced by the caller's, none of its built-in tools unless the operator enabled
 * some (`policy.cliTools`), slash commands off, and file mentions (`@/path` in a prompt, which the CLI reads and
 * attaches even with every tool off) blocked by a read-deny rule on every absolute path.
 *
 * The environment is built from an allowlist, never inherited whole: what the CLI needs to reach and authenticate
 * with its API (ANTHROPIC_*, CLAUDE_CODE_* such as CLAUDE_CODE_OAUTH_TOKEN, cloud-provider and proxy settings), with
 * HOME, CLAUDE_CONFIG_DIR and the temp folders pointing into the job's throw-away directory. Router keys (AUXOT_*)
 * and any value equal to one of the worker's secrets are dropped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { CALLER_TOOL_SERVER } from "./conversation.ts";

export interface CliArgsSpec {
  model: string;
  systemPromptFile: string;
  /** Built-in CLI tools the operator enabled (empty: none). */
  cliTools: string[];
  /** The caller-tools MCP config file, when the job offers tools. */
  mcpConfigFile?: string;
  /** Resume this session (the history transcript, or the deferred tool call). */
  resumeSessionId?: string;
  /** The final user turn comes as one stream-json message on stdin (otherwise stdin is empty). */
  promptOnStdin: boolean;
  effort?: "low" | "medium" | "high";
  thinkingDisabled?: boolean;
}

export function buildCliArgs(spec: CliArgsSpec): string[] {
  const args = [
    "-p",
    "--verbose",
    "--output-format",
    "stream-json",
    "--include-partial-messages",
    "--model",
    spec.model,
    "--system-prompt-file",
    spec.systemPromptFile,
    "--tools",
    spec.cliTools.join(","),
    "--disable-slash-commands",
    "--strict-mcp-config",
  ];
  const allowed = [...spec.cliTools, ...(spec.mcpConfigFile ? [`mcp__${CALLER_TOOL_SERVER}`] : [])];
  if (allowed.length > 0) args.push("--allowedTools", allowed.join(","));
  // `@/etc/passwd` in a prompt makes the CLI attach the file, tools or not; only a read-deny rule stops it.
  // An operator who enables the Read tool lets the model read files anyway.
  if (!spec.cliTools.includes("Read")) args.push("--disallowedTools", "Read(//**)");
  if (spec.mcpConfigFile) args.push("--mcp-config", spec.mcpConfigFile);
  // Without built-in tools one model call is all a job needs: a second would only follow a caller's tool call.
  if (spec.cliTools.length === 0) args.push("--max-turns", "1");
  if (spec.resumeSessionId) args.push("--resume", spec.resumeSessionId);
  if (spec.promptOnStdin) args.push("--input-format", "stream-json");
  if (spec.effort) args.push("--effort", spec.effort);
  if (spec.thinkingDisabled) args.push("--thinking", "disabled");
  return args;
}

/** Variables passed through by exact name. */
const PASS_NAMES = new Set([
  "PATH",
  "LANG",
  "LANGUAGE",
  "TZ",
  "SHELL",
  "USER",
  "LOGNAME",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "CLOUD_ML_REGION",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "MCP_TIMEOUT",
]);
/** Variables passed through by prefix: the CLI's own settings and its API providers'. */
const PASS_PREFIXES = ["LC_", "ANTHROPIC_", "CLAUDE_CODE_", "AWS_", "VERTEX_REGION_"];
/** Set per job (or not at all): an inherited value would leak between jobs or point outside the job directory. */
const PER_JOB = new Set([
  "CLAUDE_CONFIG_DIR",
  "CLAUDE_CODE_TMPDIR",
  "CLAUDE_CODE_RESUME_PROMPT",
  "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
]);

export interface CliEnvSpec {
  /** The worker's own environment, filtered. */
  base: Record<string, string | undefined>;
  /** Extra variable names the operator passes through (--pass-env). */
  passEnv?: string[];
  /** Values that must never reach the CLI (the worker key). */
  secrets: string[];
  home: string;
  configDir: string;
  tmpDir: string;
  maxOutputTokens?: number;
  resumePrompt?: string;
}

export function buildCliEnv(spec: CliEnvSpec): Record<string, string> {
  const extra = new Set(spec.passEnv ?? []);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.base)) {
    if (value === undefined || name.startsWith("AUXOT_") || PER_JOB.has(name)) continue;
    if (spec.secrets.some((secret) => secret && value.includes(secret))) continue;
    if (PASS_NAMES.has(name) || extra.has(name) || PASS_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      env[name] = value;
    }
  }
  Object.assign(env, {
    HOME: spec.home,
    CLAUDE_CONFIG_DIR: spec.configDir,
    TMPDIR: spec.tmpDir,
    CLAUDE_CODE_TMPDIR: spec.tmpDir,
    XDG_CONFIG_HOME: `${spec.home}/.config`,
    XDG_CACHE_HOME: `${spec.home}/.cache`,
    XDG_DATA_HOME: `${spec.home}/.local/share`,
    XDG_STATE_HOME: `${spec.home}/.local/state`,
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    // MCP servers from --mcp-config connect in the background by default: the first model call could go out
    // before the caller's tools are listed. "0" makes the CLI wait for them.
    MCP_CONNECTION_NONBLOCKING: "0",
  });
  if (spec.maxOutputTokens) env.CLAUDE_CODE_MAX_OUTPUT_TOKENS = String(spec.maxOutputTokens);
  if (spec.resumePrompt) env.CLAUDE_CODE_RESUME_PROMPT = spec.resumePrompt;
  return env;
}

export interface CliExit {
  code: number | null;
  signal: string | null;
  /** The end of what the CLI wrote to stderr (for error messages; never logged with secrets in it). */
  stderr: string;
}

const STDERR_TAIL_BYTES = 4_096;
/** How long a CLI gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 2_000;

/** A running CLI: stdout lines as they come, a group kill, and its exit. */
export class CliProcess {
  readonly exited: Promise<CliExit>;
  #child: ChildProcess;
  #stderr = "";
  #killTimer?: ReturnType<typeof setTimeout>;

  constructor(
    claudePath: string,
    args: string[],
    options: { cwd: string; env: Record<string, string>; stdin?: string; onLine: (line: string) => void },
  ) {
    this.#child = spawn(claudePath, args, {
      cwd: options.cwd,
      env: options.env,
      // Its own process group: a kill reaches the CLI's children (MCP servers, Bash tool commands) too.
      detached: true,
      stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const child = this.#child;
    if (options.stdin !== undefined) {
      // A pipe that ends: the CLI reads one message and answers it (an open pipe would wait for more).
      child.stdin!.on("error", () => {});
      child.stdin!.end(options.stdin);
    }
    let pending = "";
    const decoder = new TextDecoder();
    child.stdout!.on("data", (chunk: Uint8Array) => {
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        options.onLine(line);
      }
    });
    child.stderr!.on("data", (chunk: Uint8Array) => {
      this.#stderr = (this.#stderr + new TextDecoder().decode(chunk)).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise((resolve) => {
      let settled = false;
      const finish = (code: number | null, signal: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(this.#killTimer);
        if (pending.trim()) options.onLine(pending);
        resolve({ code, signal, stderr: this.#stderr });
      };
      child.once("error", (err) => {
        this.#stderr += `\n${err.message}`;
        finish(null, null);
      });
      child.once("close", (code, signal) => finish(code, signal));
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** SIGTERM to the whole process group, SIGKILL if it is still there after a grace period. */
  kill(): void {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#signalGroup("SIGTERM");
    this.#killTimer ??= setTimeout(() => this.#signalGroup("SIGKILL"), KILL_GRACE_MS);
  }

  #signalGroup(signal: "SIGTERM" | "SIGKILL"): void {
    const pid = this.#child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone (or the group is): kill the CLI itself in case it left its group.
      try {
        this.#child.kill(signal);
      } catch {
        // gone
      }
    }
  }
}
