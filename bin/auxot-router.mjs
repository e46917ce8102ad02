#!/usr/bin/env node
// `auxot-router <command>`: the names the configuration reference uses, mapped onto the project's Deno tasks
// (run with the Deno pinned in package.json, so no separate Deno install is needed).
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
const deno = join(root, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
if (!existsSync(deno)) {
  console.error(`auxot-router: Deno is not installed in ${root}/node_modules: run \`npm ci\` there first.`);
  process.exit(1);
}
const result = spawnSync(deno, ["task", "--quiet", "--config", join(root, "deno.json"), commands[command], ...args], {
  stdio: "inherit",
  cwd: process.cwd(),
});
process.exit(result.status ?? 1);
