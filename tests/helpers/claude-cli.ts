/**
 * The Claude Code CLIs the tests run, by path to each version's native binary in its platform package. A
 * package's own `bin/claude.exe` is a stub until its install script copies the binary in, and this repository runs
 * no install scripts (.npmrc); `node_modules/.bin/claude` may point at either version.
 */
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const PLATFORM = `${Deno.build.os === "darwin" ? "darwin" : "linux"}-${
  Deno.build.arch === "aarch64" ? "arm64" : "x64"
}`;

/** The pinned CLI (package.json: @anthropic-ai/claude-code). */
export const PINNED_CLAUDE = {
  version: "2.1.197",
  binary: join(ROOT, `node_modules/@anthropic-ai/claude-code-${PLATFORM}/claude`),
};

/** The current release (package.json: claude-code-current). */
export const CURRENT_CLAUDE = {
  version: "2.1.332",
  binary: join(ROOT, `node_modules/claude-code-current/node_modules/@anthropic-ai/claude-code-${PLATFORM}/claude`),
};

/** What one non-interactive Claude Code run printed: stream-json lines (JSON lines only), and the raw text. */
export interface ClaudeRun {
  code: number;
  /** Parsed as they come: each test reads the fields it checks. */
  // deno-lint-ignore no-explicit-any
  lines: any[];
  stdout: string;
  stderr: string;
}

/**
 * Runs a Claude Code binary once with a throw-away home (`home`: its config, sessions and temp files), a clean
 * environment (no telemetry, updates, error reports or retries) and `env` on top (base URL, key).
 */
export async function runClaude(
  binary: string,
  args: string[],
  home: string,
  env: Record<string, string> = {},
): Promise<ClaudeRun> {
  const out = await new Deno.Command(binary, {
    args,
    env: {
      HOME: home,
      TMPDIR: home,
      CLAUDE_CODE_TMPDIR: home,
      PATH: Deno.env.get("PATH") ?? "",
      DISABLE_TELEMETRY: "1",
      DISABLE_AUTOUPDATER: "1",
      DISABLE_ERROR_REPORTING: "1",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      CLAUDE_CODE_MAX_RETRIES: "0",
      ...env,
    },
    clearEnv: true,
    cwd: home,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const lines = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  return { code: out.code, lines, stdout, stderr: new TextDecoder().decode(out.stderr) };
}
