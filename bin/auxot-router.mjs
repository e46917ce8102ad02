#!/usr/bin/env node
// `auxot-router <command>`: the names the configuration reference uses, mapped onto the project's Deno tasks
// (run with the Deno pinned in package.json when npm installed it, else the Deno on PATH).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const commands = { setup: "setup", models: "models", start: "start", verify: "verify" };
const [command, ...args] = process.argv.slice(2);
if (!command || !(command in commands)) {
  console.error(
    `Usage: auxot-router <${Object.keys(commands).join("|")}> [options]\n  e.g. auxot-router setup --write-env`,
  );
  process.exit(command ? 2 : 0);
}
// The project's pinned Deno when npm installed it, else a Deno on PATH: the router's tasks need nothing else.
const local = join(root, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
const deno = existsSync(local) ? local : "deno";
const result = spawnSync(deno, ["task", "--quiet", "--config", join(root, "deno.json"), commands[command], ...args], {
  stdio: "inherit",
  cwd: process.cwd(),
});
if (result.error) {
  console.error(
    `auxot-router: Deno is not installed: install it (https://deno.com) or run \`npx deno task ${command}\` in ${root}.`,
  );
  process.exit(1);
}
process.exit(result.status ?? 1);
