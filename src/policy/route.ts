/**
 * Routing by model: which policy model serves a request (its name, an alias, or the default), the store lane its
 * jobs wait in (`chat:<model>`, `embed:<model>` — lanes are plain names to both stores), and the lanes a worker
 * claims from given the models it reports with their free slots.
 */
import { ApiError } from "../http/errors.ts";
import type { Policy, PolicyModel, WorkerInfo } from "../protocol/worker-protocol.ts";
import type { ModelAlias } from "./models.ts";
import { modelKey } from "./models.ts";

export type ModelKind = PolicyModel["kind"];

/** The policy's models; a policy from before several-model support lists only its default model. */
export function policyModels(policy: Policy): PolicyModel[] {
  if (policy.models && policy.models.length > 0) return policy.models;
  return [{
    ...policy.model,
    kind: "chat",
    ctxSize: policy.ctxSize,
    maxParallel: policy.maxParallel,
    capabilities: ["chat"],
  }];
}

export function laneOf(model: PolicyModel | { kind: ModelKind; name: string }): string {
  return `${model.kind === "chat" ? "chat" : "embed"}:${model.name}`;
}

/**
 * The policy model a request names: the model itself (case-insensitive, `custom:` optional), else an automatic
 * `claude-<model>` id, else the first alias whose pattern matches, else the default of its kind (the default chat
 * model; the first embedding model).
 * Naming a model of the other kind is the caller's mistake (400); embeddings with none configured are a 501.
 */
export function resolveModel(
  policy: Policy,
  aliases: readonly ModelAlias[],
  requested: string | undefined,
  kind: ModelKind,
): PolicyModel {
  const models = policyModels(policy);
  const wanted = (requested ?? "").trim();
  if (wanted) {
    const key = modelKey(wanted);
    const exact = models.find((m) => modelKey(m.name) === key);
    if (exact) {
      if (exact.kind !== kind) {
        throw new ApiError(
          "invalid_request",
          exact.kind === "embedding"
            ? `"${exact.name}" is an embedding model: use POST /v1/embeddings.`
            : `"${exact.name}" is a chat model, not an embedding model.${embeddingHint(models)}`,
          { param: "model" },
        );
      }
      return exact;
    }
    const lower = wanted.toLowerCase();
    const automatic = models.find((m) => m.kind === kind && automaticClaudeAlias(m) === lower);
    if (automatic) return automatic;
    for (const alias of aliases) {
      if (!alias.matcher.test(lower)) continue;
      const target = models.find((m) => m.name === alias.target);
      if (target?.kind === kind) return target;
    }
  }
  const fallback = models.find((m) => m.kind === kind);
  if (!fallback) {
    throw new ApiError(
      "not_implemented",
      "This router serves no embedding model: set AUXOT_EMBEDDING_MODELS (e.g. nomic-embed-text-v1.5).",
    );
  }
  return fallback;
}

/** `claude-<model>` for a chat model (listed for Claude Code's picker): lower case, other characters as "-". */
export function automaticClaudeAlias(model: PolicyModel): string {
  return `claude-${modelKey(model.name).replace(/[^a-z0-9.-]+/g, "-")}`;
}

function embeddingHint(models: PolicyModel[]): string {
  const embedding = models.filter((m) => m.kind === "embedding").map((m) => m.name);
  return embedding.length > 0 ? ` Embedding models served here: ${embedding.join(", ")}.` : "";
}

/**
 * The lanes a GPU or CLI worker claims from, and how many jobs it may take in one claim. A worker that lists its
 * models gets the lanes of those with a free slot, and at most the smallest free count among them, so whatever mix
 * the store hands out fits (the next poll takes more). One that does not (older workers, external engines, CLI
 * workers) serves the default chat model. The starting lane rotates so no model's queue always goes first.
 */
export function workerModelLanes(policy: Policy, worker: WorkerInfo, turn: number): { lanes: string[]; max: number } {
  const models = policyModels(policy);
  if (!worker.models) return { lanes: [laneOf(models[0])], max: worker.free };
  const byKey = new Map(models.map((m) => [modelKey(m.name), m]));
  const open = worker.models.filter((m) => m.free > 0 && byKey.get(modelKey(m.model))?.kind === m.kind);
  if (open.length === 0) return { lanes: [], max: 0 };
  const lanes = open.map((m) => laneOf(byKey.get(modelKey(m.model))!));
  const start = turn % lanes.length;
  return {
    lanes: [...lanes.slice(start), ...lanes.slice(0, start)],
    max: Math.min(worker.free, ...open.map((m) => m.free)),
  };
}

/** The policy models a worker serves or is loading (a worker that lists none serves the default chat model). */
export function modelsOfWorker(policy: Policy, worker: WorkerInfo): string[] {
  const models = policyModels(policy);
  if (!worker.models) return [models[0].name];
  const byKey = new Map(models.map((m) => [modelKey(m.name), m.name]));
  return worker.models.map((m) => byKey.get(modelKey(m.model))).filter((n): n is string => n !== undefined);
}

/** Per model of the policy: its kind, jobs waiting in its lane, workers serving it (ready ones), free slots. */
export function modelsView(
  policy: Policy,
  workers: { info: WorkerInfo }[],
  queued: Record<string, number>,
): { name: string; kind: ModelKind; queued: number; workers: number; slots: number; free: number }[] {
  return policyModels(policy).map((model) => {
    let count = 0, slots = 0, free = 0;
    for (const { info } of workers) {
      if (info.kind === "tools" || info.loaded?.policyVersion !== policy.version) continue;
      if (!modelsOfWorker(policy, info).includes(model.name)) continue;
      count++;
      const own = info.models?.find((m) => modelKey(m.model) === modelKey(model.name));
      slots += own ? own.slots : info.slots;
      free += own ? own.free : info.free;
    }
    return { name: model.name, kind: model.kind, queued: queued[laneOf(model)] ?? 0, workers: count, slots, free };
  });
}
