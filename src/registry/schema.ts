/**
 * The shape of `src/registry/models.json`, the project's own model registry: one entry per model with the
 * quantizations published for it on Hugging Face. Written by scripts/build-registry.ts (from the GGUF catalogue)
 * and scripts/refresh-registry.ts (from the Hugging Face API); read by src/registry/registry.ts.
 */
import { z } from "zod";

export const RegistryQuantization = z.object({
  /** Quantization as the file holds it ("Q4_K_S", "BF16", "UD-Q8_K_XL"), upper case. */
  name: z.string().min(1),
  /** Other names operators may use for it (the catalogue's label when it differs, e.g. "F16" for a BF16 file). */
  aliases: z.array(z.string().min(1)).optional(),
  /** Hugging Face repository ("unsloth/Qwen3.5-35B-A3B-GGUF"). */
  repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/),
  /** Path of the model file in the repository; for a split model, its first shard (`-00001-of-0000N`). */
  file: z.string().min(1),
  /** Number of shards when the model is split across several files. */
  shards: z.number().int().min(2).optional(),
  /** Size of all the model's files together, in GB (10^9 bytes). */
  sizeGb: z.number().nonnegative(),
  /** Vision projector file in the same repository, for models that take images. */
  mmproj: z.string().min(1).optional(),
  /**
   * Download pins, where known: the repository commit the files are fetched at, and each file's sha256 (the hub's
   * LFS oid). A worker downloads from that commit and accepts only those bytes, whatever the hub says today.
   */
  revision: z.string().regex(/^[0-9a-f]{40}$/).optional(),
  sha256: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)).optional(),
});
export type RegistryQuantization = z.infer<typeof RegistryQuantization>;

export const RegistryModel = z.object({
  name: z.string().min(1),
  /** "Dense" or "MoE". */
  family: z.string(),
  /** Parameter count as published ("35B", "268M"). */
  parameters: z.string(),
  /** Context the catalogue suggests by default, and the longest the model supports, in tokens. */
  defaultContext: z.number().int().positive(),
  maxContext: z.number().int().positive(),
  /** "chat", "vision", "reasoning", "code", "image_generation", "embedding". */
  capabilities: z.array(z.string()),
  /** Embedding models: vector length, and the smallest length it may be cut to (Matryoshka training). */
  embedding: z.object({
    dimensions: z.number().int().positive(),
    minDimensions: z.number().int().positive().optional(),
  }).optional(),
  /** Sorted by size, smallest first. */
  quantizations: z.array(RegistryQuantization).min(1),
});
export type RegistryModel = z.infer<typeof RegistryModel>;

export const Registry = z.object({
  /** Format version of this file. */
  format: z.literal(1),
  /** Where the data came from (catalogue version, or the Hugging Face refresh date). */
  source: z.string(),
  /** Sorted by name (case-insensitive). */
  models: z.array(RegistryModel),
});
export type Registry = z.infer<typeof Registry>;

/** Sorts models and their quantizations the way models.json keeps them, so regenerated files diff cleanly. */
export function sortRegistry(registry: Registry): Registry {
  const models = registry.models.map((model) => ({
    ...model,
    quantizations: [...model.quantizations].sort((a, b) => a.sizeGb - b.sizeGb || compareText(a.name, b.name)),
  }));
  models.sort((a, b) => compareText(a.name.toLowerCase(), b.name.toLowerCase()) || compareText(a.name, b.name));
  return { ...registry, models };
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * models.json text: validated, sorted, one model field per line and one quantization per line, so that a
 * refresh shows up in a diff as the lines of the quantizations that changed.
 */
export function serializeRegistry(registry: Registry): string {
  const sorted = sortRegistry(Registry.parse(registry));
  const models = sorted.models.map((model) => {
    const { quantizations, ...fields } = model;
    const fieldLines = Object.entries(fields).map(([key, value]) =>
      `      ${JSON.stringify(key)}: ${JSON.stringify(value)},`
    );
    const quantLines = quantizations.map((q) => `        ${JSON.stringify(q)}`).join(",\n");
    return `    {\n${fieldLines.join("\n")}\n      "quantizations": [\n${quantLines}\n      ]\n    }`;
  });
  return `{\n  "format": ${sorted.format},\n  "source": ${JSON.stringify(sorted.source)},\n  "models": [\n${
    models.join(",\n")
  }\n  ]\n}\n`;
}
