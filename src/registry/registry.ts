/**
 * The embedded model registry: lookup by name, "did you mean" suggestions, and the policy's model block for a
 * configured model. Platform-neutral (the registry is a JSON module bundled with the router, on Deno and on
 * Workers alike).
 *
 * Custom models: a name starting with `custom:` (e.g. `custom:my-finetune`) is accepted without a registry
 * entry. The policy then carries only the name (and the quantization, if set) and no files, and every GPU worker
 * must be started with `--model-path` pointing at its own GGUF file. Any other name must be in the registry, so
 * a typo fails at startup with suggestions instead of reaching every worker as an unknown download.
 */
import modelsJson from "./models.json" with { type: "json" };
import embeddingModelsJson from "./embedding-models.json" with { type: "json" };
import type { Policy } from "../protocol/worker-protocol.ts";
import { Registry, type RegistryModel, type RegistryQuantization, sortRegistry } from "./schema.ts";

export type { RegistryModel, RegistryQuantization } from "./schema.ts";

/** AUXOT_MODEL's default. */
export const DEFAULT_MODEL = "Qwen3.5-35B-A3B";

/** Prefix that marks a model outside the registry (served from each worker's --model-path). */
export const CUSTOM_MODEL_PREFIX = "custom:";

/**
 * Parsed once when the module loads; a malformed models.json fails loudly at startup. Embedding models live in their
 * own file (the GGUF catalogue that models.json is built from has none), merged in here.
 */
export const chatRegistry: Registry = Registry.parse(modelsJson);
export const embeddingRegistry: Registry = Registry.parse(embeddingModelsJson);
export const registry: Registry = sortRegistry({
  ...chatRegistry,
  models: [...chatRegistry.models, ...embeddingRegistry.models],
});

const byLowerName = new Map(registry.models.map((model) => [model.name.toLowerCase(), model]));

/** All registry models, sorted by name. */
export function listModels(): readonly RegistryModel[] {
  return registry.models;
}

/** The model with this name, compared case-insensitively; undefined when the registry has none. */
export function findModel(name: string): RegistryModel | undefined {
  return byLowerName.get(name.trim().toLowerCase());
}

/** The model's quantizations, smallest first. */
export function quantizationsOf(model: RegistryModel): readonly RegistryQuantization[] {
  return model.quantizations;
}

/** The quantization called `name` (or one of its aliases, e.g. "F16" for a BF16 file), case-insensitively. */
export function findQuantization(model: RegistryModel, name: string): RegistryQuantization | undefined {
  const wanted = name.trim().toUpperCase();
  return model.quantizations.find((q) => q.name === wanted || (q.aliases ?? []).includes(wanted));
}

/**
 * Up to `limit` registry names close to `name`: names that contain it (or that it contains) first, then by edit
 * distance. Names too far away to be a typo are left out, so an unrelated name gets no suggestions.
 */
export function suggestModels(name: string, limit = 3): string[] {
  const wanted = name.trim().toLowerCase();
  if (!wanted) return [];
  const scored = registry.models.map((model) => {
    const candidate = model.name.toLowerCase();
    const contains = candidate.includes(wanted) || wanted.includes(candidate);
    return { name: model.name, contains, distance: editDistance(wanted, candidate) };
  });
  const maxDistance = Math.max(2, Math.floor(wanted.length / 3));
  return scored
    .filter((s) => s.contains || s.distance <= maxDistance)
    .sort((a, b) => Number(b.contains) - Number(a.contains) || a.distance - b.distance || (a.name < b.name ? -1 : 1))
    .slice(0, limit)
    .map((s) => s.name);
}

/** Levenshtein distance (insertions, deletions, substitutions), two rows of memory. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

export type RegistryErrorCode = "unknown_model" | "unknown_quantization";

/** A model or quantization the registry does not have; `suggestions` holds the closest valid names. */
export class RegistryError extends Error {
  constructor(readonly code: RegistryErrorCode, message: string, readonly suggestions: string[]) {
    super(message);
    this.name = "RegistryError";
  }
}

export function isCustomModelName(name: string): boolean {
  return name.trim().toLowerCase().startsWith(CUSTOM_MODEL_PREFIX) && name.trim().length > CUSTOM_MODEL_PREFIX.length;
}

/**
 * The policy's model block for a configured model (AUXOT_MODEL, AUXOT_QUANTIZATION). Registry names are
 * returned in their canonical spelling with every quantization's files, so a worker can pick the best that fits
 * when no quantization is set. Throws RegistryError for an unknown model or quantization.
 */
export function resolvePolicyModel(name: string, quantization?: string): Policy["model"] {
  const trimmed = name.trim();
  const wantedQuantization = quantization?.trim() || undefined;
  if (isCustomModelName(trimmed)) {
    return wantedQuantization ? { name: trimmed, quantization: wantedQuantization } : { name: trimmed };
  }
  const model = findModel(trimmed);
  if (!model) {
    const suggestions = suggestModels(trimmed);
    const hint = suggestions.length > 0 ? ` Did you mean ${suggestions.map((s) => `"${s}"`).join(", ")}?` : "";
    throw new RegistryError(
      "unknown_model",
      `Unknown model "${trimmed}".${hint} Run \`deno task models\` to list the registry, or name your own GGUF ` +
        `file "${CUSTOM_MODEL_PREFIX}<name>" and start the GPU workers with --model-path.`,
      suggestions,
    );
  }
  const files = model.quantizations.map((q) => ({
    quantization: q.name,
    huggingFaceRepo: q.repo,
    file: q.file,
    sizeGb: q.sizeGb,
    ...(q.shards ? { shards: q.shards } : {}),
    ...(q.mmproj ? { mmproj: q.mmproj } : {}),
    ...(q.revision ? { revision: q.revision } : {}),
    ...(q.sha256 ? { sha256: q.sha256 } : {}),
  }));
  if (!wantedQuantization) return { name: model.name, files };
  const found = findQuantization(model, wantedQuantization);
  if (!found) {
    const available = model.quantizations.map((q) => q.name);
    throw new RegistryError(
      "unknown_quantization",
      `Model "${model.name}" has no quantization "${wantedQuantization}". Available: ${available.join(", ")}.`,
      available,
    );
  }
  return { name: model.name, quantization: found.name, files };
}

/** "32K" for 32768, "1M" for 1048576, "8192"-style numbers below 1K. */
export function formatTokens(tokens: number): string {
  if (tokens >= 1024 * 1024 && tokens % (1024 * 1024) === 0) return `${tokens / (1024 * 1024)}M`;
  if (tokens >= 1024 && tokens % 1024 === 0) return `${tokens / 1024}K`;
  return String(tokens);
}

function formatGb(gb: number): string {
  return gb >= 100 ? `${Math.round(gb)}G` : `${Number(gb.toFixed(1))}G`;
}

/**
 * A plain-text table of models for terminals (`deno task models`): name, family, parameters, context
 * (default/max) and each quantization with its size.
 */
export function formatModelTable(models: readonly RegistryModel[]): string {
  const header = ["MODEL", "FAMILY", "PARAMS", "CONTEXT", "CAPABILITIES", "QUANTIZATIONS (size)"];
  const rows = models.map((model) => [
    model.name,
    model.family,
    model.parameters,
    `${formatTokens(model.defaultContext)}/${formatTokens(model.maxContext)}`,
    model.capabilities.join(","),
    model.quantizations.map((q) => `${q.name} ${formatGb(q.sizeGb)}`).join(", "),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) =>
    cells.map((cell, column) => column === cells.length - 1 ? cell : cell.padEnd(widths[column])).join("  ");
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
