/**
 * Which llama.cpp backend the GPU worker runs on, said out loud at start: "backend cuda · NVIDIA H100 · 79.1 GB
 * free of 85.5 GB". node-llama-cpp picks the best build that loads (CUDA, Vulkan, Metal, else CPU); this module
 * loads it, reports the choice with the GPU and its free VRAM, and warns loudly when the machine has a GPU
 * (workers/gpu/gpu-detect.mjs) but the CPU build was chosen, saying why and how to fix it.
 */
import process from "node:process";
import type { Llama } from "node-llama-cpp";
import type { Logger } from "../../src/log.ts";
import { type DetectedGpu, detectGpus } from "./gpu-detect.mjs";
import { loadLlamaBackend } from "./llama-engine.ts";

export interface BackendReport {
  backend: "cuda" | "vulkan" | "metal" | "cpu";
  gpu?: string;
  vramFreeBytes?: number;
  vramTotalBytes?: number;
  /** Set when a GPU is present but unused: what a person should do about it. */
  warning?: string;
  /** Why the CPU, when nothing is wrong (no GPU found). */
  note?: string;
}

/** Whether node-llama-cpp's build for a GPU API is installed (its forwarder resolves to the real package). */
async function buildInstalled(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

/** Why the CPU backend was chosen on a machine with a GPU, and the fix. Pure: tested without hardware. */
export function cpuFallbackWarning(
  gpus: readonly DetectedGpu[],
  context: { gpuLayers?: number | "auto"; cpuOnly: boolean; gpuBuildInstalled: boolean; platform: string },
): string | undefined {
  const gpu = gpus.find((g) => g.vendor !== "apple") ?? gpus[0];
  if (!gpu) return undefined;
  const head = `a GPU is present (${gpu.name}) but llama.cpp runs on the CPU`;
  if (context.gpuLayers === 0) return `${head}: --gpu-layers 0 (AUXOT_GPU_LAYERS=0) was given`;
  if (context.cpuOnly) return `${head}: AUXOT_CPU_ONLY is set`;
  if (!context.gpuBuildInstalled) {
    return `${head}: its llama.cpp build is not installed. Run \`node bin/auxot-worker-install.mjs\` ` +
      "(without AUXOT_CPU_ONLY), then restart the worker";
  }
  if (gpu.vendor === "nvidia") {
    return `${head}: the CUDA build is installed but did not load. It needs the NVIDIA driver (\`nvidia-smi\`) and ` +
      "the CUDA runtime libraries with cuBLAS, CUDA 13 or 12 (e.g. NVIDIA's cuda-libraries-13-0 package, or the " +
      "nvidia/cuda runtime image: Dockerfile.worker); AUXOT_LOG_LEVEL=debug shows llama.cpp's own messages";
  }
  return `${head}: the Vulkan build did not load. Install the Vulkan loader and drivers (e.g. libvulkan1, ` +
    "mesa-vulkan-drivers) and check with `vulkaninfo`";
}

/** The GPU build node-llama-cpp would import for a detected GPU on this platform (Linux only: macOS has one). */
function gpuBuildFor(gpus: readonly DetectedGpu[], platform: string): string | undefined {
  if (platform !== "linux") return undefined;
  if (gpus.some((g) => g.vendor === "nvidia")) return "@node-llama-cpp/linux-x64-cuda";
  if (gpus.some((g) => g.vendor === "amd" || g.vendor === "intel")) return "@node-llama-cpp/linux-x64-vulkan";
  return undefined;
}

/** Describes the backend `llama` runs on (and the warning, when a detected GPU goes unused). */
export async function describeBackend(
  llama: Pick<Llama, "gpu" | "getVramState" | "getGpuDeviceNames">,
  gpus: readonly DetectedGpu[],
  context: { gpuLayers?: number | "auto"; cpuOnly: boolean; platform: string },
): Promise<BackendReport> {
  if (llama.gpu !== false) {
    const [names, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()]);
    return {
      backend: llama.gpu,
      ...(names.length ? { gpu: [...new Set(names)].join(", ") } : {}),
      vramFreeBytes: vram.free,
      vramTotalBytes: vram.total,
    };
  }
  const build = gpuBuildFor(gpus, context.platform);
  const warning = cpuFallbackWarning(gpus, {
    ...context,
    gpuBuildInstalled: build ? await buildInstalled(build) : true,
  });
  return { backend: "cpu", ...(warning ? { warning } : gpus.length === 0 ? { note: "no GPU found" } : {}) };
}

/** Loads node-llama-cpp's backend and logs what it chose ("llama backend"), warning when a GPU goes unused. */
export async function loadReportedBackend(
  options: { gpuLayers?: number | "auto"; log: Logger; env: Record<string, string | undefined> },
): Promise<Llama> {
  const cpuOnly = /^(1|true|yes|on)$/i.test(options.env.AUXOT_CPU_ONLY ?? "");
  const llama = await loadLlamaBackend({
    gpuLayers: cpuOnly ? 0 : options.gpuLayers,
    log: (m) => options.log.debug(m),
  });
  const report = await describeBackend(llama, detectGpus(), {
    ...(options.gpuLayers !== undefined ? { gpuLayers: options.gpuLayers } : {}),
    cpuOnly,
    platform: process.platform,
  });
  const { warning, ...fields } = report;
  options.log.info("llama backend", fields);
  if (warning) {
    options.log.warn(`!!! ${warning} !!!`, { backend: "cpu" });
  }
  return llama;
}
