/**
 * Refreshes src/registry/models.json from the Hugging Face API: for each model's repository it lists the GGUF
 * files (`GET {endpoint}/api/models/{repo}/tree/main?recursive=true`, following `Link: rel="next"` pages) and
 * brings the model's quantizations up to date: sizes and shard counts from the listing, files that moved,
 * quantizations that disappeared (removed) or appeared (added), and the vision projector.
 *
 *   deno run -A scripts/refresh-registry.ts [--hf-endpoint URL] [--registry PATH] [--model NAME]... [--no-add]
 *                                           [--dry-run]
 *
 * HF_ENDPOINT sets the endpoint too (default https://huggingface.co); HF_TOKEN is sent for gated repositories.
 * Repositories that cannot be listed are reported and left as they were (exit code 1).
 */
import { readFile, writeFile } from "node:fs/promises";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { isMmprojFile, parseShardName, quantizationFromFileName, shardFileNames } from "../src/registry/model-files.ts";
import {
  compareText,
  Registry,
  type RegistryModel,
  type RegistryQuantization,
  serializeRegistry,
} from "../src/registry/schema.ts";

const TreeEntry = z.object({
  type: z.string(),
  path: z.string(),
  size: z.number().nonnegative(),
  lfs: z.object({ oid: z.string(), size: z.number().nonnegative() }).optional(),
});
type TreeEntry = z.infer<typeof TreeEntry>;

export interface RefreshOptions {
  endpoint: string;
  token?: string;
  /** Only these models (case-insensitive names); default all. */
  models?: string[];
  /** Add quantizations the registry does not list yet. Default true. */
  add?: boolean;
  /** Repositories listed at once. Default 4. */
  concurrency?: number;
  fetch?: typeof fetch;
  /** Text for the registry's `source` when anything changed. */
  source?: string;
}

export interface RefreshResult {
  registry: Registry;
  /** One line per change ("+ Model Q4_K_M 4.92 GB", "~ Model Q8_0 size 8.1 → 8.54 GB", "- Model Q3_K_S"). */
  changes: string[];
  /** Repositories that could not be listed, with why. */
  failures: string[];
  /** Files skipped (incomplete shard sets, names without a quantization). */
  warnings: string[];
}

/** A model file in a repository: a single file or a complete shard set, keyed by its first file. */
interface RemoteModelFile {
  file: string;
  quantization: string;
  shards: number;
  bytes: number;
}

export async function refreshRegistry(registry: Registry, options: RefreshOptions): Promise<RefreshResult> {
  const wanted = options.models?.map((name) => name.toLowerCase());
  const changes: string[] = [];
  const failures: string[] = [];
  const warnings: string[] = [];
  const selected = registry.models.filter((m) => !wanted || wanted.includes(m.name.toLowerCase()));
  const listings = new Map<string, TreeEntry[]>();
  const repos = [...new Set(selected.flatMap((m) => m.quantizations.map((q) => q.repo)))].sort(compareText);
  await forEachLimited(repos, options.concurrency ?? 4, async (repo) => {
    try {
      listings.set(repo, await listRepoFiles(repo, options));
    } catch (err) {
      failures.push(`${repo}: ${err instanceof Error ? err.message : String(err)}`);
    }
  });

  const models = registry.models.map((model) => {
    if (!selected.includes(model)) return model;
    const repo = model.quantizations[0].repo;
    const listing = listings.get(repo);
    if (!listing || model.quantizations.some((q) => q.repo !== repo)) return model;
    return refreshModel(model, repo, listing, options.add ?? true, changes, warnings);
  });
  const refreshed: Registry = {
    ...registry,
    source: changes.length > 0 ? options.source ?? registry.source : registry.source,
    models,
  };
  return { registry: Registry.parse(refreshed), changes, failures: failures.sort(compareText), warnings };
}

function refreshModel(
  model: RegistryModel,
  repo: string,
  listing: TreeEntry[],
  add: boolean,
  changes: string[],
  warnings: string[],
): RegistryModel {
  const ggufs = listing.filter((e) => e.type === "file" && /\.gguf$/i.test(e.path));
  const mmprojs = ggufs.filter((e) => isMmprojFile(e.path)).map((e) => e.path);
  const remote = groupModelFiles(ggufs.filter((e) => !isMmprojFile(e.path)), `${model.name} (${repo})`, warnings);
  const mmproj = chooseMmproj(mmprojs, model.quantizations.find((q) => q.mmproj)?.mmproj);
  // The hub's LFS oid is the file's sha256: kept as the download pin (workers accept only those bytes).
  const shaByPath = new Map(
    ggufs.flatMap((e) => e.lfs && /^[0-9a-f]{64}$/.test(e.lfs.oid) ? [[e.path, e.lfs.oid] as const] : []),
  );
  // Files still where the registry says first; then a file of the same quantization elsewhere (it moved).
  const matches = new Map(model.quantizations.map((q) => [q, remote.find((r) => r.file === q.file)]));
  const used = new Set([...matches.values()].flatMap((r) => r ? [r.file] : []));
  for (const [q, match] of matches) {
    if (match) continue;
    const moved = remote.find((r) => r.quantization === q.name && !used.has(r.file));
    if (moved) {
      matches.set(q, moved);
      used.add(moved.file);
    }
  }
  const quantizations: RegistryQuantization[] = [];
  for (const [q, match] of matches) {
    if (!match) {
      changes.push(`- ${model.name} ${q.name}: ${q.file} is no longer in ${repo}`);
      continue;
    }
    const updated = toQuantization(match, repo, mmproj, q.aliases, shaByPath);
    if (updated.file !== q.file) changes.push(`~ ${model.name} ${q.name}: file ${q.file} → ${updated.file}`);
    if (updated.sizeGb !== q.sizeGb) changes.push(`~ ${model.name} ${q.name}: size ${q.sizeGb} → ${updated.sizeGb} GB`);
    if (updated.shards !== q.shards) {
      changes.push(`~ ${model.name} ${q.name}: shards ${q.shards ?? 1} → ${match.shards}`);
    }
    if (updated.mmproj !== q.mmproj) changes.push(`~ ${model.name} ${q.name}: mmproj ${q.mmproj} → ${updated.mmproj}`);
    quantizations.push({ ...updated, name: q.name });
  }
  if (add) {
    const taken = new Set(quantizations.map((q) => q.name));
    for (const r of remote) {
      if (used.has(r.file) || taken.has(r.quantization)) continue;
      taken.add(r.quantization);
      // A real file of this name beats an alias that stood in for it (e.g. "F16" on a BF16 file).
      for (const q of quantizations) {
        if (q.aliases?.includes(r.quantization)) {
          const aliases = q.aliases.filter((a) => a !== r.quantization);
          if (aliases.length > 0) q.aliases = aliases;
          else delete q.aliases;
        }
      }
      const added = toQuantization(r, repo, mmproj, undefined, shaByPath);
      quantizations.push(added);
      changes.push(`+ ${model.name} ${added.name}: ${added.file} (${added.sizeGb} GB)`);
    }
  }
  if (quantizations.length === 0) {
    warnings.push(`${model.name}: no GGUF files left in ${repo}; kept as it was`);
    return model;
  }
  return { ...model, quantizations };
}

function toQuantization(
  remote: RemoteModelFile,
  repo: string,
  mmproj: string | undefined,
  aliases: string[] | undefined,
  shaByPath: Map<string, string>,
): RegistryQuantization {
  const q: RegistryQuantization = { name: remote.quantization, repo, file: remote.file, sizeGb: toGb(remote.bytes) };
  if (aliases && aliases.length > 0) q.aliases = aliases;
  if (remote.shards > 1) q.shards = remote.shards;
  if (mmproj) q.mmproj = mmproj;
  const files = [...shardFileNames(remote.file), ...(mmproj ? [mmproj] : [])];
  if (files.every((f) => shaByPath.has(f))) q.sha256 = Object.fromEntries(files.map((f) => [f, shaByPath.get(f)!]));
  return q;
}

/** Groups shards into one model file each; incomplete shard sets and unnamed quantizations are skipped. */
function groupModelFiles(entries: TreeEntry[], label: string, warnings: string[]): RemoteModelFile[] {
  const byFirst = new Map<string, { shards: number; seen: Set<string>; bytes: number }>();
  for (const entry of entries) {
    const shard = parseShardName(entry.path);
    const first = shardFileNames(entry.path)[0];
    const group = byFirst.get(first) ?? { shards: shard?.count ?? 1, seen: new Set(), bytes: 0 };
    group.seen.add(entry.path);
    group.bytes += entry.lfs?.size ?? entry.size;
    byFirst.set(first, group);
  }
  const files: RemoteModelFile[] = [];
  for (const [file, group] of [...byFirst].sort(([a], [b]) => compareText(a, b))) {
    const quantization = quantizationFromFileName(file);
    if (group.seen.size !== group.shards) {
      warnings.push(`${label}: ${file} has ${group.seen.size} of ${group.shards} shards; skipped`);
    } else if (!quantization) {
      warnings.push(`${label}: cannot tell the quantization of ${file}; skipped`);
    } else {
      files.push({ file, quantization, shards: group.shards, bytes: group.bytes });
    }
  }
  return files;
}

/** Keeps the current projector if it is still there; else prefers F16, then BF16, then F32. */
function chooseMmproj(files: string[], current: string | undefined): string | undefined {
  if (current && files.includes(current)) return current;
  for (const precision of ["F16", "BF16", "F32"]) {
    const found = files.filter((f) => quantizationFromFileName(f) === precision).sort(compareText)[0];
    if (found) return found;
  }
  return [...files].sort(compareText)[0];
}

function toGb(bytes: number): number {
  return Math.round(bytes / 1e7) / 100;
}

/** Every file of a repository, following the hub's `Link: <...>; rel="next"` pagination. */
export async function listRepoFiles(repo: string, options: Pick<RefreshOptions, "endpoint" | "token" | "fetch">) {
  const fetchImpl = options.fetch ?? fetch;
  const endpoint = options.endpoint.replace(/\/+$/, "");
  const entries: TreeEntry[] = [];
  let url: string | undefined = `${endpoint}/api/models/${repo}/tree/main?recursive=true`;
  for (let page = 0; url; page++) {
    if (page > 1000) throw new Error("too many pages");
    const headers: Record<string, string> = { accept: "application/json" };
    // Like the downloader: the token goes to the hub's own origin only.
    if (options.token && new URL(url).origin === new URL(endpoint).origin) {
      headers.authorization = `Bearer ${options.token}`;
    }
    const response: Response = await fetchImpl(url, { headers });
    if (!response.ok) {
      await response.body?.cancel();
      const code = response.headers.get("x-error-code");
      const hint = response.status === 401 || response.status === 403 ? " (gated or private: set HF_TOKEN)" : "";
      throw new Error(`HTTP ${response.status}${code ? ` ${code}` : ""} listing files${hint}`);
    }
    entries.push(...z.array(TreeEntry).parse(await response.json()));
    url = nextLink(response.headers.get("link"), url);
  }
  return entries;
}

function nextLink(header: string | null, base: string): string | undefined {
  for (const part of header?.split(",") ?? []) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match) return new URL(match[1], base).href;
  }
  return undefined;
}

async function forEachLimited<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function parseArgs(args: string[]) {
  const options = { endpoint: "", registry: "", models: [] as string[], add: true, dryRun: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--hf-endpoint") options.endpoint = value();
    else if (arg.startsWith("--hf-endpoint=")) options.endpoint = arg.slice("--hf-endpoint=".length);
    else if (arg === "--registry") options.registry = value();
    else if (arg === "--model") options.models.push(value());
    else if (arg === "--no-add") options.add = false;
    else if (arg === "--dry-run") options.dryRun = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  const endpoint = parsed.endpoint || process.env.HF_ENDPOINT || "https://huggingface.co";
  const path = parsed.registry || fileURLToPath(new URL("../src/registry/models.json", import.meta.url));
  const registry = Registry.parse(JSON.parse(await readFile(path, "utf8")));
  const result = await refreshRegistry(registry, {
    endpoint,
    token: process.env.HF_TOKEN || undefined,
    models: parsed.models.length > 0 ? parsed.models : undefined,
    add: parsed.add,
    source: `Hugging Face ${new URL(endpoint).host}, refreshed ${new Date().toISOString().slice(0, 10)}`,
  });
  for (const line of result.changes) console.log(line);
  for (const line of result.warnings) console.warn(`warning: ${line}`);
  for (const line of result.failures) console.error(`failed: ${line}`);
  if (!parsed.dryRun && result.changes.length > 0) await writeFile(path, serializeRegistry(result.registry));
  console.log(
    `${result.changes.length} change(s)${parsed.dryRun ? " (dry run, nothing written)" : ""}; ` +
      `${result.failures.length} repositor${result.failures.length === 1 ? "y" : "ies"} failed`,
  );
  return result.failures.length > 0 ? 1 : 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
