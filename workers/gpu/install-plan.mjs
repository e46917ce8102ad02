// @ts-check
/**
 * The worker's install plan: from the platform, the GPUs found and the CPU-only switch to the llama.cpp build
 * (cuda, vulkan, metal, cpu) and the `npm ci` command that installs exactly it. A pure function, so the decision is
 * tested without the hardware (tests/gpu/install-plan.test.ts); bin/auxot-worker-install.mjs runs it.
 *
 * How the builds are reached (package.json): node-llama-cpp's CPU and macOS builds come with it; its Linux CUDA and
 * Vulkan builds are stood in for by vendor/llama-backend/* workspaces that forward to alias packages which only the
 * @auxot/llama-cuda / @auxot/llama-vulkan workspaces install. So the plan picks workspaces: leaving a GPU workspace
 * out is what keeps a build out. A plain `npm ci` installs every workspace (all builds for the platform).
 */

export const LLAMA_CPP_VERSION = "3.22.1";

/**
 * @typedef {import("./gpu-detect.mjs").DetectedGpu} DetectedGpu
 * @typedef {"cuda" | "vulkan" | "metal" | "cpu"} Backend
 * @typedef {{
 *   backend: Backend,
 *   packages: string[],
 *   workspaces: string[],
 *   npmArgs: string[],
 *   reason: string,
 *   warning?: string,
 * }} InstallPlan
 *   packages: node-llama-cpp's binary packages this install provides (real names, as node-llama-cpp imports them).
 */

/** @param {string | undefined} value */
export function isSet(value) {
  return /^(1|true|yes|on)$/i.test((value ?? "").trim());
}

/**
 * @param {{
 *   platform: string,
 *   arch: string,
 *   gpus: DetectedGpu[],
 *   env?: Record<string, string | undefined>,
 *   dev?: boolean,
 *   cudaRuntime?: boolean,
 * }} input
 *   env.AUXOT_CPU_ONLY=1: the CPU build only (CI, development, or a GPU kept for something else).
 *   dev: also the development dependencies (tests), as `npm test` / .ci/run install.
 *   cudaRuntime: whether libcudart/libcublas 12 or 13 were found (gpu-detect.mjs hasCudaRuntime); false warns.
 * @returns {InstallPlan}
 */
export function workerInstallPlan({ platform, arch, gpus, env = {}, dev = false, cudaRuntime }) {
  const cpuOnly = isSet(env.AUXOT_CPU_ONLY);
  const nvidia = gpus.find((g) => g.vendor === "nvidia");
  const other = gpus.find((g) => g.vendor === "amd" || g.vendor === "intel");
  /** @type {Backend} */
  let backend = "cpu";
  /** @type {string[]} */
  let packages = [];
  const workspaces = ["@auxot/worker"];
  let reason = "";
  /** @type {string | undefined} */
  let warning;

  if (platform === "darwin") {
    // One macOS build per architecture comes with node-llama-cpp: arm64 has Metal, x64 is CPU-only.
    packages = [arch === "arm64" ? "@node-llama-cpp/mac-arm64-metal" : "@node-llama-cpp/mac-x64"];
    backend = arch === "arm64" && !cpuOnly ? "metal" : "cpu";
    reason = arch === "arm64"
      ? (cpuOnly
        ? "AUXOT_CPU_ONLY is set (the Metal build is installed; the worker will not use the GPU)"
        : "Apple silicon: Metal")
      : "Intel Mac: node-llama-cpp has a CPU build only";
  } else if (platform === "linux" && arch === "x64") {
    packages = ["@node-llama-cpp/linux-x64"];
    if (cpuOnly) {
      reason = "AUXOT_CPU_ONLY is set";
      if (nvidia || other) {
        warning = `a GPU is present (${(nvidia ?? other)?.name}) but AUXOT_CPU_ONLY keeps its build out`;
      }
    } else if (nvidia) {
      backend = "cuda";
      packages.push("@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-cuda-ext");
      workspaces.push("@auxot/llama-cuda");
      reason = `NVIDIA GPU found (${nvidia.name}); the CUDA build needs the driver and the CUDA 13 or 12 runtime ` +
        "libraries with cuBLAS";
      if (!nvidia.driver) {
        warning =
          "nvidia-smi did not answer: install the NVIDIA driver (CUDA 12 or 13 runtime), or the worker falls back to the CPU";
      } else if (cudaRuntime === false) {
        warning = "the CUDA runtime libraries (libcudart and libcublas, CUDA 13 or 12) were not found: install them " +
          "(e.g. NVIDIA's cuda-libraries-13-0 package) or the worker falls back to the CPU";
      }
    } else if (other) {
      backend = "vulkan";
      packages.push("@node-llama-cpp/linux-x64-vulkan");
      workspaces.push("@auxot/llama-vulkan");
      reason = `${
        other.vendor === "amd" ? "AMD" : "Intel"
      } GPU found: Vulkan (needs the Vulkan loader, e.g. libvulkan1 and mesa-vulkan-drivers)`;
    } else {
      reason = "no GPU found";
    }
  } else if (platform === "linux" && (arch === "arm64" || arch === "arm")) {
    packages = [arch === "arm64" ? "@node-llama-cpp/linux-arm64" : "@node-llama-cpp/linux-armv7l"];
    reason = "Linux on ARM: node-llama-cpp's build for it runs on the CPU";
  } else {
    throw new Error(
      `No worker build for ${platform}-${arch} in this install (Windows: run the worker under WSL 2, which is Linux).`,
    );
  }
  const npmArgs = [
    "ci",
    ...(dev ? [] : ["--omit=dev"]),
    ...workspaces.flatMap((w) => ["--workspace", w]),
    "--include-workspace-root",
    "--no-audit",
    "--no-fund",
  ];
  return { backend, packages, workspaces, npmArgs, reason, ...(warning ? { warning } : {}) };
}
