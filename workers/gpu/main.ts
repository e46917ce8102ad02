/**
 * The GPU worker: `deno task worker:gpu --gpu-key-file FILE --router-url https://router.example`.
 * Polls the router, receives the model policy, gets the model (registry + fit + download, or --model-path),
 * loads it with node-llama-cpp (or forwards to an external OpenAI-compatible engine with --llama-url) and serves
 * jobs until stopped. Ctrl-C finishes running jobs (or hands them back after a grace period) and exits cleanly.
 */
import { AllowList } from "../tools/net-guard.ts";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import process from "node:process";
import { createLogger, logFormatFrom, type LogLevel } from "../../src/log.ts";
import type { Engine } from "../common/engine.ts";
import { withJobLog } from "../common/job-log.ts";
import { WorkerLoop } from "../common/worker-loop.ts";
import {
  ArgsError,
  connectionArgs,
  logLevelFrom,
  parseFlags,
  runUntilStopped,
  workerMain,
} from "../common/worker-main.ts";
import { ExternalEngine } from "./external-engine.ts";
import { ModelSetEngine } from "./model-set-engine.ts";

const USAGE = `Usage: deno task worker:gpu --gpu-key-file FILE --router-url https://router.example [options]

  --gpu-key-file FILE   file holding the worker key (or AUXOT_GPU_KEY_FILE; mode 600), or set AUXOT_GPU_KEY
  --gpu-key KEY         (avoid: a flag is visible to every user in ps) worker key from \`deno task setup\` (or AUXOT_GPU_KEY)
  --router-url URL      the router's base URL (or AUXOT_ROUTER_URL)
  --model-path FILE     serve this GGUF file instead of downloading the policy's model (or AUXOT_MODEL_FILE);
                        NAME=FILE for one model of a several-model policy (repeatable)
  --models A,B          serve these models of the policy (or AUXOT_WORKER_MODELS; default: all that fit, in order)
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
  /** `--model-path` values: FILE (the first model's) or NAME=FILE. */
  modelPaths: string[];
  /** `--models`: the policy models to serve; empty = every one that fits. */
  models: string[];
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
    "gpu-key-file": { type: "string" },
    "router-url": { type: "string" },
    "model-path": { type: "string", multiple: true },
    models: { type: "string" },
    "llama-url": { type: "string" },
    slots: { type: "string" },
    "gpu-layers": { type: "string" },
    threads: { type: "string" },
    "models-dir": { type: "string" },
    name: { type: "string" },
  }, USAGE);
  const { routerUrl, key } = connectionArgs(
    GPU_CONNECTION,
    { routerUrl: values["router-url"], key: values["gpu-key"], keyFile: values["gpu-key-file"] },
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
    modelPaths: values["model-path"] ?? (env.AUXOT_MODEL_FILE ? [env.AUXOT_MODEL_FILE] : []),
    models: (values.models ?? env.AUXOT_WORKER_MODELS ?? "").split(",").map((m) => m.trim()).filter(Boolean),
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

export async function runGpuWorker(args: GpuWorkerArgs): Promise<number> {
  for (const value of args.modelPaths) {
    const file = /^[^=/]+=/.test(value) ? value.slice(value.indexOf("=") + 1) : value;
    if (!existsSync(file)) {
      console.error(`--model-path: no such file: ${file}`);
      return 2;
    }
  }
  const format = logFormatFrom(process.env, process.stderr.isTTY === true);
  const log = createLogger(args.logLevel, (line) => console.error(line), { worker: "gpu" }, format);
  const engine: Engine = withJobLog(
    args.llamaUrl
      ? new ExternalEngine({
        url: args.llamaUrl,
        slots: args.slots,
        images: { allow: AllowList.parse(Deno.env.get("AUXOT_IMAGE_FETCH_ALLOW")) },
      })
      : new ModelSetEngine({
        modelPaths: args.modelPaths,
        models: args.models,
        ...(args.gpuLayers !== undefined ? { gpuLayers: args.gpuLayers } : {}),
        ...(args.threads ? { threads: args.threads } : {}),
        ...(args.modelsDir ? { modelsDir: args.modelsDir } : {}),
        jsonLogs: format === "json",
      }, log),
    log,
  );
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
    name: args.name,
    router: args.routerUrl,
    engine: args.llamaUrl ? "external" : "node-llama-cpp",
  });
  return await runUntilStopped(loop, engine, log);
}

if (import.meta.main) await workerMain(parseGpuWorkerArgs, runGpuWorker);
