/**
 * How much memory a model may use on this machine: free VRAM when node-llama-cpp runs on a GPU backend
 * (CUDA, Vulkan, Metal), free RAM otherwise. Separate from fit.ts so the fit stays pure and testable without
 * a native addon.
 */
import { freemem, totalmem } from "node:os";
import type { Llama } from "node-llama-cpp";

export interface FreeMemory {
  /** Bytes available for weights, cache and compute buffers. */
  freeBytes: number;
  /** Total bytes of that memory (VRAM or RAM). */
  totalBytes: number;
  /** "cuda", "vulkan", "metal" or "cpu". */
  backend: string;
  /** True when the GPU shares system RAM (Apple silicon, some SoCs): the figure is system-wide. */
  unified: boolean;
}

/**
 * Free memory for the backend `llama` runs on. With a GPU backend this is `getVramState().free`; on CPU it is
 * the OS's free RAM (`os.freemem()`), since weights are then held in RAM (memory-mapped).
 */
export async function measureFreeMemory(llama: Pick<Llama, "gpu" | "getVramState">): Promise<FreeMemory> {
  if (llama.gpu !== false) {
    const vram = await llama.getVramState();
    return { freeBytes: vram.free, totalBytes: vram.total, backend: llama.gpu, unified: vram.unifiedSize > 0 };
  }
  return { freeBytes: freemem(), totalBytes: totalmem(), backend: "cpu", unified: false };
}
