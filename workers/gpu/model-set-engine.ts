/**
 * The GPU worker's engine for a several-model policy: one node-llama-cpp backend, one LlamaEngine per chat model and
 * one EmbeddingEngine per embedding model this worker serves, each with its own slots. Which models:
 *
 * - `--models a,b` (AUXOT_WORKER_MODELS): those, in that order (names as the router's policy spells them, compared
 *   case-insensitively, `custom:` optional); a name the policy does not hold is reported and skipped;
 * - otherwise every model of the policy, in the policy's order — the default chat model (AUXOT_MODEL), then
 *   AUXOT_MODELS, then AUXOT_EMBEDDING_MODELS — as long as it fits: each is fitted against the memory measured
 *   after the ones before it loaded, and one that does not fit is skipped (and said why).
 *
 * Files: `--model-path NAME=FILE` serves model NAME from FILE; a bare `--model-path FILE` is the first model's (the
 * default chat model, or the first of `--models`), as on a one-model worker. A custom model with no file is
 * skipped; a registry model without one is downloaded (provision.ts). The worker reports each model it serves with
 * its slots (`WorkerInfo.models`); the router sends it only jobs for those, at most as many as each has free.
 */
import process from "node:process";
import type { Llama } from "node-llama-cpp";
import type { Logger } from "../../src/log.ts";
import type {
  LoadedModel,
  Policy,
  PolicyModel,
  ServedModel,
  WorkerInfo,
  WorkerJob,
} from "../../src/protocol/worker-protocol.ts";
import { modelKey } from "../../src/policy/models.ts";
import { policyModels } from "../../src/policy/route.ts";
import type { Engine, EventSink } from "../common/engine.ts";
import { createProgressReporter, downloadModel, hubSettingsFromEnv } from "./download.ts";
import { EmbeddingEngine } from "./embedding-engine.ts";
import { readGgufHeader } from "./gguf-header.ts";
import { loadReportedBackend } from "./backend.ts";
import { LlamaEngine } from "./llama-engine.ts";
import { measureFreeMemory } from "./memory.ts";
import { provisionModel } from "./provision.ts";

export interface ModelSetArgs {
  /** `--model-path` values: `FILE` or `NAME=FILE`. */
  modelPaths: string[];
  /** `--models`: the policy models to serve (empty: all that fit). */
  models: string[];
  gpuLayers?: number | "auto";
  threads?: number;
  modelsDir?: string;
  /** JSON logs get download progress as log records, never a redrawn bar between them. */
  jsonLogs?: boolean;
}

interface Served {
  model: PolicyModel;
  path: string;
  chat?: LlamaEngine;
  embedding?: EmbeddingEngine;
  info: ServedModel;
  running: number;
}

export class ModelSetEngine implements Engine {
  readonly kind = "gpu" as const;
  /** Chat jobs run on LlamaEngine, which resumes a lost worker's answer (continuations). */
  readonly resumesContinuations = true;
  #llama?: Promise<Llama>;
  #served = new Map<string, Served>();
  #planned: ServedModel[] = [];
  #default?: string;

  constructor(readonly args: ModelSetArgs, readonly log: Logger) {}

  slots(): number {
    let n = 0;
    for (const s of this.#served.values()) n += s.info.slots;
    return n;
  }

  async applyPolicy(policy: Policy): Promise<LoadedModel | undefined> {
    if (policy.engine !== "llama") return undefined;
    const llama = await (this.#llama ??= loadReportedBackend({
      gpuLayers: this.args.gpuLayers,
      log: this.log,
      env: process.env,
    }));
    const { chosen, notes } = chooseModels(policyModels(policy), this.args);
    this.#default = policyModels(policy)[0].name;
    // Said at once (slots 0 while loading), so the router knows what this worker is bringing up.
    this.#planned = chosen.map(({ model }) => ({ model: model.name, kind: model.kind, slots: 0, free: 0 }));
    const wanted = new Set(chosen.map((c) => c.model.name));
    for (const [name, served] of this.#served) {
      if (!wanted.has(name)) await this.#drop(name, served);
    }
    for (const { model, path } of chosen) {
      try {
        await this.#bringUp(policy, model, path, llama);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        notes.push(`${model.name} skipped: ${reason}`);
        this.log.warn("model not served", { model: model.name, reason });
        const served = this.#served.get(model.name);
        if (served) await this.#drop(model.name, served);
      }
    }
    this.#planned = [];
    const served = [...this.#served.values()];
    if (served.length === 0) throw new Error(`no model of the policy could be served here: ${notes.join("; ")}`);
    this.log.info("serving models", {
      models: served.map((s) => `${s.info.model} (${s.info.kind}, ${s.info.slots} slots)`),
      ...(notes.length > 0 ? { skipped: notes } : {}),
    });
    const first = served[0].info;
    const note = notes.join("; ");
    return {
      policyVersion: policy.version,
      model: first.model,
      ...(first.quantization ? { quantization: first.quantization } : {}),
      ...(first.ctxSize ? { ctxSize: first.ctxSize } : {}),
      parallel: first.slots,
      ...(note ? { note: note.slice(0, 1000) } : {}),
    };
  }

  async #bringUp(policy: Policy, model: PolicyModel, path: string | undefined, llama: Llama): Promise<void> {
    const hub = hubSettingsFromEnv(process.env);
    const subPolicy: Policy = {
      ...policy,
      model: {
        name: model.name,
        ...(model.quantization ? { quantization: model.quantization } : {}),
        ...(model.files ? { files: model.files } : {}),
      },
      ctxSize: model.ctxSize ?? 2048,
      maxParallel: model.maxParallel,
    };
    const provisioned = await provisionModel(subPolicy, {
      freeBytes: async () => (await measureFreeMemory(llama)).freeBytes,
      readHeader: (url, headers) => readGgufHeader(url, { headers }),
      download: downloadModel,
      hub: { ...hub, ...(this.args.modelsDir ? { modelsDir: this.args.modelsDir } : {}) },
      log: (message, fields) => this.log.info(message, { model: model.name, ...fields }),
      onProgress: createProgressReporter({
        log: (line) => this.log.info("download", { progress: line }),
        ...(this.args.jsonLogs
          ? { stream: { isTTY: false, write: (text: string) => process.stderr.write(text) } }
          : {}),
      }),
    }, path);
    let served = this.#served.get(model.name);
    if (served && served.path !== provisioned.modelPath) {
      await this.#drop(model.name, served);
      served = undefined;
    }
    const common = {
      llama,
      modelPath: provisioned.modelPath,
      ...(this.args.threads ? { threads: this.args.threads } : {}),
      ...(this.args.gpuLayers !== undefined ? { gpuLayers: this.args.gpuLayers } : {}),
    };
    if (model.kind === "embedding") {
      const embedding = served?.embedding ?? new EmbeddingEngine(common);
      const loaded = await embedding.load(model);
      const info: ServedModel = {
        model: model.name,
        kind: "embedding",
        slots: model.maxParallel,
        free: model.maxParallel,
        ctxSize: loaded.ctxSize,
        dimensions: loaded.dimensions,
        ...(provisioned.quantization ? { quantization: provisioned.quantization } : {}),
      };
      this.#served.set(model.name, { model, path: provisioned.modelPath, embedding, info, running: 0 });
      return;
    }
    const chat = served?.chat ?? new LlamaEngine({ ...common, log: (m) => this.log.debug(m) });
    const loaded = await chat.applyPolicy({
      ...subPolicy,
      ctxSize: provisioned.ctxSize,
      maxParallel: provisioned.parallel,
    });
    if (!loaded) throw new Error("the engine loaded nothing");
    const note = [provisioned.note, loaded.note].filter(Boolean).join("; ");
    const info: ServedModel = {
      model: model.name,
      kind: "chat",
      slots: chat.slots(),
      free: chat.slots(),
      ...(loaded.quantization ? { quantization: loaded.quantization } : {}),
      ...(loaded.ctxSize ? { ctxSize: loaded.ctxSize } : {}),
      ...(note ? { note: note.slice(0, 500) } : {}),
    };
    this.#served.set(model.name, { model, path: provisioned.modelPath, chat, info, running: served?.running ?? 0 });
  }

  async #drop(name: string, served: Served): Promise<void> {
    this.#served.delete(name);
    await served.chat?.dispose();
    await served.embedding?.dispose();
  }

  async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind === "tool") throw new Error("a GPU worker does not run tool jobs");
    const name = job.model ?? this.#default ?? "";
    const served = [...this.#served.values()].find((s) => modelKey(s.model.name) === modelKey(name));
    if (!served) {
      // Not (or no longer) loaded here: hand it back before any output so another worker serves it.
      sink.emit({
        type: "error",
        code: "model_not_loaded",
        message: `this worker does not serve ${name}`,
        retryable: true,
      });
      return;
    }
    served.running++;
    try {
      if (job.kind === "embedding") {
        if (!served.embedding) throw new Error(`${name} is not an embedding model`);
        await served.embedding.run(job, sink, signal);
      } else {
        if (!served.chat) throw new Error(`${name} is an embedding model`);
        await served.chat.run(job, sink, signal);
      }
    } finally {
      served.running--;
    }
  }

  describe(): Partial<WorkerInfo> {
    const served = [...this.#served.values()];
    const models: ServedModel[] = served.map((s) => ({ ...s.info, free: Math.max(0, s.info.slots - s.running) }));
    for (const planned of this.#planned) if (!this.#served.has(planned.model)) models.push(planned);
    const cached = new Set<string>();
    let extra: Partial<WorkerInfo> = {};
    for (const s of served) {
      if (!s.chat) continue;
      const d = s.chat.describe();
      for (const key of d.cachedConversations ?? []) cached.add(key);
      if (!extra.hardware) extra = d;
    }
    return {
      ...extra,
      cachedConversations: [...cached].slice(0, 256),
      ...(models.length > 0 ? { models } : {}),
    };
  }

  async dispose(): Promise<void> {
    for (const [name, served] of [...this.#served]) await this.#drop(name, served);
    if (this.#llama) await (await this.#llama).dispose();
    this.#llama = undefined;
  }
}

/**
 * The policy models to bring up, in order, each with its file when one was given, and why others are left out.
 * Exported for tests: this is the documented choice (see the module comment).
 */
export function chooseModels(
  models: PolicyModel[],
  args: Pick<ModelSetArgs, "modelPaths" | "models">,
): { chosen: { model: PolicyModel; path?: string }[]; notes: string[] } {
  const notes: string[] = [];
  const byKey = new Map(models.map((m) => [modelKey(m.name), m]));
  let order: PolicyModel[] = models;
  if (args.models.length > 0) {
    order = [];
    for (const name of args.models) {
      const model = byKey.get(modelKey(name));
      if (model) order.push(model);
      else {notes.push(`--models: the router's policy has no model "${name}" (it has ${
          models.map((m) => m.name).join(", ")
        })`);}
    }
  }
  const named = new Map<string, string>();
  let bare: string | undefined;
  for (const value of args.modelPaths) {
    const eq = value.indexOf("=");
    if (eq > 0 && !value.slice(0, eq).includes("/")) named.set(modelKey(value.slice(0, eq)), value.slice(eq + 1));
    else bare = value;
  }
  const chosen: { model: PolicyModel; path?: string }[] = [];
  for (const [index, model] of order.entries()) {
    const path = named.get(modelKey(model.name)) ?? (index === 0 ? bare : undefined);
    if (!path && !model.files?.length) {
      notes.push(`${model.name} skipped: a custom model needs --model-path ${model.name}=FILE here`);
      continue;
    }
    chosen.push({ model, ...(path ? { path } : {}) });
  }
  return { chosen, notes };
}
