// Runs `npm ci` when node_modules is missing or older than package-lock.json, so `npm start` / `npm test` work
// on a fresh clone in one command. Plain Node (it runs before Deno is installed).
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync("package-lock.json").mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error("Installing dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund", { stdio: "inherit" });
}
