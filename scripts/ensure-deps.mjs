// Installs the development dependencies when node_modules is missing or older than package-lock.json, so
// `npm start` / `npm test` work on a fresh clone in one command. Plain Node (it runs before Deno is installed).
// `npm ci` with the worker install plan (workers/gpu/install-plan.mjs, dev): the lockfile is complete, so the
// install is exactly what it pins; the plan adds the CUDA/Vulkan build when this machine has that GPU, and
// AUXOT_CPU_ONLY=1 (as .ci/run sets) keeps GPU builds out.
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { detectGpus } from "../workers/gpu/gpu-detect.mjs";
import { workerInstallPlan } from "../workers/gpu/install-plan.mjs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync("package-lock.json").mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  const plan = workerInstallPlan({
    platform: process.platform,
    arch: process.arch,
    gpus: detectGpus(),
    env: process.env,
    dev: true,
  });
  console.error(
    `Installing dependencies (llama.cpp build: ${plan.backend}, ${plan.reason}): npm ${plan.npmArgs.join(" ")}`,
  );
  execFileSync(process.platform === "win32" ? "npm.cmd" : "npm", plan.npmArgs, { stdio: "inherit" });
}
