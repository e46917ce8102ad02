/**
 * The GPU worker: `deno task worker:gpu --gpu-key adm_... --router-url https://router.example`.
 * Polls the router, receives the model policy, gets the model (registry + fit + download, or --model-path),
 * loads it with node-llama-cpp (or forwards to an external OpenAI-compatible engine with --llama-url) and serves
 * jobs until stopped. Ctrl-C finishes running jobs (or hands them back after a grace period) and exits cleanly.
 */
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import process from "node:process";
import { createLogger, type LogLevel } from "../../src/log.ts";
import type { LoadedModel, Policy, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Engine, EventSink } from "../common/engine.ts";
import { WorkerLoop } from "../common/worker-loop.ts";
import {
  ArgsError,
  connectionArgs,
  logLevelFrom,
  parseFlags,
  runUntilStopped,
  workerMain,
} from "../common/worker-main.ts";
import { createProgressReporter, downloadModel, hubSettingsFromEnv } from "./download.ts";
import { ExternalEngine } from "./external-engine.ts";
import { readGgufHeader } from "./gguf-header.ts";
import { LlamaEngine, loadLlamaBackend } from "./llama-engine.ts";
import { measureFreeMemory } from "./memory.ts";
import { provisionModel } from "./provision.ts";

const USAGE = `Usage: deno task worker:gpu --gpu-key adm_... --router-url https://router.example [options]

  --gpu-key KEY         worker key from \`deno task setup\` (or AUXOT_GPU_KEY)
  --router-url URL      the router's base URL (or AUXOT_ROUTER_URL)
  --model-path FILE     serve this GGUF file instead of downloading the policy's model (or AUXOT_MODEL_FILE)
  --llama-url URL       forward jobs to an OpenAI-compatible server instead (or AUXOT_LLAMA_URL)
  --slots N             parallel jobs with --llama-url (default 2)
  --gpu-layers N|auto   layers to offload to the GPU (or AUXOT_GPU_LAYERS; default auto)
  --threads N           CPU threads for llama.cpp (or AUXOT_THREADS; default 1 on <= 2 cores, else llama.cpp's)
  --models-dir DIR      model cache (or AUXOT_MODELS_DIR; default ~/.auxot/models)
  --name NAME           how the dashboard shows this worker (default: the host name)`;

export const WORKER_VERSION = "0.1.0";

export interface GpuWorkerArgs {
  key: string;
  routerUrl: string;
  modelPath?: string;
  llamaUrl?: string;
  slots: number;
  gpuLayers?: number | "auto";
  threads?: number;
  modelsDir?: string;
  name: string;
  logLevel: LogLevel;
}

const GPU_CONNECTION = {
  keyFlag: "--gpu-key",
  keyVariable: "AUXOT_GPU_KEY",
  keyPrefix: "adm_",
  keyName: "worker key",
  keyHint: "`deno task setup` creates one.",
  usage: USAGE,
} as const;

export function parseGpuWorkerArgs(argv: string[], env: Record<string, string | undefined>): GpuWorkerArgs {
  const values = parseFlags(argv, {
    "gpu-key": { type: "string" },
    "router-url": { type: "string" },
    "model-path": { type: "string" },
    "llama-url": { type: "string" },
    slots: { type: "string" },
    "gpu-layers": { type: "string" },
    threads: { type: "string" },
    "models-dir": { type: "string" },
    name: { type: "string" },
  }, USAGE);
  const { routerUrl, key } = connectionArgs(
    GPU_CONNECTION,
    { routerUrl: values["router-url"], key: values["gpu-key"] },
    env,
  );
  const int = (name: string, raw: string | undefined, min: number): number | undefined => {
    if (raw === undefined || raw === "") return undefined;
    if (!/^\d+$/.test(raw) || Number(raw) < min) {
      throw new ArgsError(`${name} must be a whole number >= ${min}, got "${raw}".`);
    }
    return Number(raw);
  };
  const layersRaw = values["gpu-layers"] ?? env.AUXOT_GPU_LAYERS;
  const logLevel = logLevelFrom(env);
  return {
    key,
    routerUrl,
    modelPath: values["model-path"] ?? (env.AUXOT_MODEL_FILE || undefined),
    llamaUrl: values["llama-url"] ?? (env.AUXOT_LLAMA_URL || undefined),
    slots: int("--slots", values.slots, 1) ?? 2,
    gpuLayers: layersRaw === undefined || layersRaw === "" || layersRaw === "auto"
      ? undefined
      : int("--gpu-layers (AUXOT_GPU_LAYERS)", layersRaw, 0),
    threads: int("--threads (AUXOT_THREADS)", values.threads ?? env.AUXOT_THREADS, 1),
    modelsDir: values["models-dir"] ?? (env.AUXOT_MODELS_DIR || undefined),
    name: values.name ?? hostname(),
    logLevel,
  };
}

/**
 * The node-llama-cpp engine behind model provisioning: each policy is resolved to a file (download or
 * --model-path) and the slots/context this machine can serve, then loaded; a new model replaces the old one.
 */
class ProvisionedLlamaEngine implements Engine {
  readonly resumesContinuations = true;
  readonly kind = "gpu" as const;
  #engine?: LlamaEngine;
  #modelPath?: string;
  #llama?: Promise<Awaited<ReturnType<typeof loadLlamaBackend>>>;
  constructor(readonly args: GpuWorkerArgs, readonly log: ReturnType<typeof createLogger>) {}

  slots(): number {
    return this.#engine?.slots() ?? 0;
  }

  async applyPolicy(policy: Policy): Promise<LoadedModel | undefined> {
    this.#llama ??= loadLlamaBackend({ gpuLayers: this.args.gpuLayers, log: (m) => this.log.debug(m) });
    const llama = await this.#llama;
    const hub = hubSettingsFromEnv(process.env);
    const provisioned = await provisionModel(policy, {
      freeBytes: async () => (await measureFreeMemory(llama)).freeBytes,
      readHeader: (url, headers) => readGgufHeader(url, { headers }),
      download: downloadModel,
      hub: { ...hub, ...(this.args.modelsDir ? { modelsDir: this.args.modelsDir } : {}) },
      log: (message, fields) => this.log.info(message, fields),
      onProgress: createProgressReporter({ log: (line) => this.log.info("download", { progress: line }) }),
    }, this.args.modelPath);
    if (this.#engine && this.#modelPath !== provisioned.modelPath) {
      await this.#engine.dispose();
      this.#engine = undefined;
    }
    this.#modelPath = provisioned.modelPath;
    this.#engine ??= new LlamaEngine({
      modelPath: provisioned.modelPath,
      llama,
      ...(this.args.threads ? { threads: this.args.threads } : {}),
      ...(this.args.gpuLayers !== undefined ? { gpuLayers: this.args.gpuLayers } : {}),
      log: (m) => this.log.debug(m),
    });
    const loaded = await this.#engine.applyPolicy({
      ...policy,
      ctxSize: provisioned.ctxSize,
      maxParallel: provisioned.parallel,
    });
    if (!loaded) return undefined;
    const note = [provisioned.note, loaded.note].filter(Boolean).join("; ");
    return { ...loaded, policyVersion: policy.version, ...(note ? { note } : {}) };
  }

  run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (!this.#engine) return Promise.reject(new Error("no model is loaded"));
    return this.#engine.run(job, sink, signal);
  }

  describe() {
    return this.#engine?.describe() ?? {};
  }

  async dispose(): Promise<void> {
    await this.#engine?.dispose();
  }
}

export async function runGpuWorker(args: GpuWorkerArgs): Promise<number> {
  if (args.modelPath && !existsSync(args.modelPath)) {
    console.error(`--model-path: no such file: ${args.modelPath}`);
    return 2;
  }
  const log = createLogger(args.logLevel, (line) => console.error(line), { worker: "gpu" });
  const engine: Engine = args.llamaUrl
    ? new ExternalEngine({ url: args.llamaUrl, slots: args.slots })
    : new ProvisionedLlamaEngine(args, log);
  const loop = new WorkerLoop({
    routerUrl: args.routerUrl,
    key: args.key,
    engine,
    log,
    name: args.name,
    version: WORKER_VERSION,
  });
  log.info("worker starting", {
    id: loop.id,
    router: args.routerUrl,
    engine: args.llamaUrl ? "external" : "node-llama-cpp",
  });
  return await runUntilStopped(loop, engine, log);
}

if (import.meta.main) await workerMain(parseGpuWorkerArgs, runGpuWorker);
