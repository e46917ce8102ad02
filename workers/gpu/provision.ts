/**
 * From a model policy to a file on disk and the slots to run: the quantization the policy names, or — when it
 * names none — the best one that fits this machine, judged from GGUF headers read with ranged requests (never a
 * download) against the measured free memory; then context and parallel slots lowered if needed, and the chosen
 * files downloaded (verified, resumable). `--model-path` skips all of it. Every choice comes with a reason that is
 * logged and reported to the router.
 */
import type { Policy } from "../../src/protocol/worker-protocol.ts";
import type { DownloadedModel, DownloadModelOptions } from "./download.ts";
import { hubFileUrl } from "./download.ts";
import { chooseFit, type FitCandidate, type FitChoice, gib } from "./fit.ts";
import type { GgufHeader } from "./gguf-header.ts";
import { isNetworkFailure, unreachableHostMessage } from "./network-hint.ts";

export interface ProvisionDeps {
  /** Free VRAM (or RAM on CPU), measured by the engine's backend. */
  freeBytes(): Promise<number>;
  readHeader(url: string, headers: Record<string, string>): Promise<GgufHeader>;
  download(options: DownloadModelOptions): Promise<DownloadedModel>;
  hub: { endpoint: string; token?: string; modelsDir?: string };
  log(message: string, fields?: Record<string, unknown>): void;
  onProgress?: DownloadModelOptions["onProgress"];
}

export interface Provisioned {
  modelPath: string;
  quantization?: string;
  ctxSize: number;
  parallel: number;
  /** Why less than the policy asked for, or how the quantization was chosen. */
  note?: string;
}

/** Resolves the policy to a local model file and the context/slots this machine can serve. */
export async function provisionModel(policy: Policy, deps: ProvisionDeps, modelPath?: string): Promise<Provisioned> {
  if (modelPath) {
    return { modelPath, ctxSize: policy.ctxSize, parallel: policy.maxParallel, note: `model file given: ${modelPath}` };
  }
  const files = policy.model.files ?? [];
  if (files.length === 0) {
    throw new Error(
      `The router's model "${policy.model.name}" is not in the registry: start this worker with --model-path ` +
        `(or AUXOT_MODEL_FILE) pointing at its GGUF file.`,
    );
  }
  const auth: Record<string, string> = deps.hub.token ? { authorization: `Bearer ${deps.hub.token}` } : {};
  const wanted = policy.model.quantization;
  const pool = wanted ? files.filter((f) => f.quantization === wanted) : files;
  if (pool.length === 0) throw new Error(`The registry lists no file for quantization ${wanted}.`);

  const free = await deps.freeBytes();
  const candidates: FitCandidate[] = [];
  let unreachable: { url: string; err: unknown } | undefined;
  for (const file of pool) {
    const url = hubFileUrl(deps.hub.endpoint, file.huggingFaceRepo, file.file, file.revision);
    // The host did not answer for one file: it will not for the others (one clear error instead of one per file).
    if (unreachable) break;
    try {
      const header = await deps.readHeader(url, auth);
      // A split model's first shard holds the metadata; the registry's size covers all shards.
      const weightsBytes = file.shards && file.sizeGb ? file.sizeGb * 1e9 : undefined;
      candidates.push({ quantization: file.quantization, header, ...(weightsBytes ? { weightsBytes } : {}) });
    } catch (err) {
      if (isNetworkFailure(err)) {
        unreachable = { url, err };
        continue;
      }
      deps.log("could not read a candidate's GGUF header; skipping it", {
        quantization: file.quantization,
        error: err,
      });
    }
  }
  if (unreachable && candidates.length === 0) throw new Error(unreachableHostMessage(unreachable.url, unreachable.err));
  if (candidates.length === 0) throw new Error(`Could not read the GGUF header of any ${policy.model.name} file.`);
  const fit: FitChoice = chooseFit({
    candidates,
    freeBytes: free,
    ctxSize: policy.ctxSize,
    parallel: policy.maxParallel,
  });
  const chosen = pool.find((f) => f.quantization === fit.quantization)!;
  deps.log("model fit chosen", {
    quantization: fit.quantization,
    ctxSize: fit.ctxSize,
    parallel: fit.parallel,
    reason: fit.reason,
    free: gib(free),
  });
  const downloaded = await deps.download({
    repo: chosen.huggingFaceRepo,
    file: chosen.file,
    ...(chosen.mmproj ? { mmproj: chosen.mmproj } : {}),
    ...(chosen.revision ? { revision: chosen.revision } : {}),
    ...(chosen.sha256 ? { sha256: chosen.sha256 } : {}),
    endpoint: deps.hub.endpoint,
    ...(deps.hub.token ? { token: deps.hub.token } : {}),
    ...(deps.hub.modelsDir ? { modelsDir: deps.hub.modelsDir } : {}),
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
  });
  return {
    modelPath: downloaded.path,
    quantization: fit.quantization,
    ctxSize: fit.ctxSize,
    parallel: fit.parallel,
    note: fit.reason,
  };
}
