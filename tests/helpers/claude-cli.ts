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
