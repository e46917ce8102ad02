#!/usr/bin/env node
// @ts-check
/**
 * Installs what an Auxot worker runs, with the llama.cpp build for this machine's GPU:
 *   node bin/auxot-worker-install.mjs            (or: deno task worker:install)
 * CUDA on Linux x64 with an NVIDIA GPU, Vulkan with an AMD/Intel GPU, Metal on Apple silicon, else the CPU build.
 * AUXOT_CPU_ONLY=1 keeps GPU builds out; --dev adds the development dependencies (tests); --dry-run prints the plan
 * and the npm command without running it. The plan itself is workers/gpu/install-plan.mjs.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectGpus, hasCudaRuntime } from "../workers/gpu/gpu-detect.mjs";
import { workerInstallPlan } from "../workers/gpu/install-plan.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const unknown = args.filter((a) => !["--dry-run", "--dev", "--json", "--help", "-h"].includes(a));
if (unknown.length > 0 || args.includes("--help") || args.includes("-h")) {
  console.error(
    "Usage: node bin/auxot-worker-install.mjs [--dry-run] [--dev] [--json]   (AUXOT_CPU_ONLY=1: CPU build only)",
  );
  process.exit(unknown.length > 0 ? 2 : 0);
}
const gpus = detectGpus();
let plan;
try {
  plan = workerInstallPlan({
    platform: process.platform,
    arch: process.arch,
    gpus,
    env: process.env,
    dev: args.includes("--dev"),
    ...(gpus.some((g) => g.vendor === "nvidia") ? { cudaRuntime: hasCudaRuntime() } : {}),
  });
} catch (err) {
  console.error(`auxot-worker-install: ${/** @type {Error} */ (err).message}`);
  process.exit(1);
}
if (args.includes("--json")) {
  console.log(JSON.stringify({ gpus, ...plan }));
  if (args.includes("--dry-run")) process.exit(0);
} else {
  const found = gpus.length ? gpus.map((g) => g.name).join(", ") : "none";
  console.error(`GPUs found: ${found}`);
  console.error(`llama.cpp build: ${plan.backend} (${plan.reason})`);
  if (plan.warning) console.error(`WARNING: ${plan.warning}`);
  console.error(`npm ${plan.npmArgs.join(" ")}`);
}
if (args.includes("--dry-run")) process.exit(0);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const result = spawnSync(npm, plan.npmArgs, { cwd: root, stdio: "inherit" });
if (result.error) {
  console.error(`auxot-worker-install: could not run npm (${result.error.message}): install Node.js 20+ with npm.`);
  process.exit(1);
}
if (result.status === 0) {
  console.error(
    `Installed. Start the worker: deno task worker:gpu --gpu-key-file ~/.auxot/worker.key --router-url https://your-router (the key in a 0600 file)`,
  );
}
process.exit(result.status ?? 1);
