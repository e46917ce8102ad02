/**
 * Builds the project's model registry (src/registry/models.json) from a GGUF model catalogue: one catalogue
 * entry per quantization becomes one model entry with its quantizations. The output is deterministic (sorted,
 * fixed layout), so it can be committed and regenerated without noise. The repository never reads the
 * catalogue at run time; only this script does.
 *
 *   deno run -A scripts/build-registry.ts ../shared/data/gguf-model-catalog.json [--out src/registry/models.json]
 *
 * Quantization names come from the file names, because the catalogue's labels do not always say what the file
 * holds ("F16" for a BF16 file, "Q8_K" for Unsloth's UD-Q8_K_XL); a differing label is kept as an alias.
 */
import { readFile, writeFile } from "node:fs/promises";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { parseShardName, quantizationFromFileName } from "../src/registry/model-files.ts";
import {
  type Registry,
  type RegistryModel,
  type RegistryQuantization,
  serializeRegistry,
} from "../src/registry/schema.ts";

const CatalogueEntry = z.object({
  model_name: z.string().min(1),
  huggingface_id: z.string().min(1),
  quantization: z.string().min(1),
  family: z.string(),
  parameters: z.string(),
  default_context_size: z.number().int().positive(),
  max_context_size: z.number().int().positive(),
  vram_requirements_gb: z.number().nonnegative(),
  capabilities: z.array(z.string()),
  file_name: z.string().min(1),
  mmproj_file_name: z.string().min(1).optional(),
});
type CatalogueEntry = z.infer<typeof CatalogueEntry>;

const Catalogue = z.object({
  version: z.string(),
  generated_at: z.string(),
  models: z.array(CatalogueEntry),
});
type Catalogue = z.infer<typeof Catalogue>;

export function buildRegistry(catalogue: Catalogue): Registry {
  const byModel = new Map<string, CatalogueEntry[]>();
  for (const entry of catalogue.models) {
    const entries = byModel.get(entry.model_name) ?? [];
    entries.push(entry);
    byModel.set(entry.model_name, entries);
  }
  const models: RegistryModel[] = [];
  for (const [name, entries] of byModel) {
    const first = entries[0];
    for (const entry of entries) assertSameModelFields(first, entry);
    const quantizations = entries.map(toQuantization);
    const names = new Set<string>();
    for (const q of quantizations) {
      for (const n of [q.name, ...(q.aliases ?? [])]) {
        if (names.has(n)) throw new Error(`${name}: quantization name ${n} appears twice`);
        names.add(n);
      }
    }
    models.push({
      name,
      family: first.family,
      parameters: first.parameters,
      defaultContext: first.default_context_size,
      maxContext: first.max_context_size,
      capabilities: [...first.capabilities].sort(),
      quantizations,
    });
  }
  return { format: 1, source: `gguf-model-catalog ${catalogue.version} (${catalogue.generated_at})`, models };
}

function toQuantization(entry: CatalogueEntry): RegistryQuantization {
  const fromFile = quantizationFromFileName(entry.file_name);
  const label = entry.quantization.toUpperCase();
  const name = fromFile ?? label;
  const shard = parseShardName(entry.file_name);
  if (shard && shard.index !== 1) throw new Error(`${entry.file_name}: expected the first shard`);
  const quantization: RegistryQuantization = { name, repo: entry.huggingface_id, file: entry.file_name, sizeGb: 0 };
  if (label !== name) quantization.aliases = [label];
  if (shard) quantization.shards = shard.count;
  quantization.sizeGb = entry.vram_requirements_gb;
  if (entry.mmproj_file_name) quantization.mmproj = entry.mmproj_file_name;
  return quantization;
}

/** The catalogue repeats model-level fields on every quantization; they must agree. */
function assertSameModelFields(a: CatalogueEntry, b: CatalogueEntry): void {
  const fields = [
    "huggingface_id",
    "family",
    "parameters",
    "default_context_size",
    "max_context_size",
    "capabilities",
  ] as const;
  for (const field of fields) {
    if (JSON.stringify(a[field]) !== JSON.stringify(b[field])) {
      throw new Error(`${a.model_name}: catalogue entries disagree on ${field}`);
    }
  }
}

async function main(args: string[]): Promise<void> {
  const outIndex = args.indexOf("--out");
  const out = outIndex >= 0
    ? args[outIndex + 1]
    : fileURLToPath(new URL("../src/registry/models.json", import.meta.url));
  const input = args.find((arg, i) => !arg.startsWith("--") && args[i - 1] !== "--out");
  if (!input || !out) {
    console.error("usage: deno run -A scripts/build-registry.ts CATALOGUE.json [--out models.json]");
    process.exitCode = 2;
    return;
  }
  const catalogue = Catalogue.parse(JSON.parse(await readFile(input, "utf8")));
  const registry = buildRegistry(catalogue);
  await writeFile(out, serializeRegistry(registry));
  const quantizations = registry.models.reduce((sum, m) => sum + m.quantizations.length, 0);
  console.log(`wrote ${out}: ${registry.models.length} models, ${quantizations} quantizations`);
}

if (import.meta.main) await main(process.argv.slice(2));
