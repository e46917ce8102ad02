// Installs dependencies when node_modules is missing or older than package-lock.json, so `npm start` / `npm test`
// work on a fresh clone in one command. Plain Node (it runs before Deno is installed).
// `npm install` rather than `npm ci`: the lockfile pins every version, but it was made where the registry serves
// only Linux x64 builds, so it lacks the other platforms' optional binary packages, which `npm ci` insists on.
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync("package-lock.json").mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error("Installing dependencies (npm install)...");
  execSync("npm install --no-audit --no-fund", { stdio: "inherit" });
}
