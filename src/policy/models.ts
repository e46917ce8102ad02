/**
 * Several models in one policy: the default chat model (AUXOT_MODEL with AUXOT_QUANTIZATION, AUXOT_CTX_SIZE,
 * AUXOT_MAX_PARALLEL, exactly as for a one-model router), more chat models (AUXOT_MODELS), embedding models
 * (AUXOT_EMBEDDING_MODELS) and aliases from client model names to served models (AUXOT_MODEL_ALIASES).
 *
 *   AUXOT_MODELS="Qwen3-8B quantization=Q4_K_M ctx=32768 parallel=4, custom:tiny"
 *   AUXOT_EMBEDDING_MODELS="nomic-embed-text-v1.5"
 *   AUXOT_MODEL_ALIASES="claude-haiku-*=Qwen3-8B, gpt-*-mini=Qwen3-8B"
 *
 * A model entry is a name followed by optional `quantization=`, `ctx=` and `parallel=` settings; unset ones take
 * AUXOT_QUANTIZATION's "auto", AUXOT_CTX_SIZE and AUXOT_MAX_PARALLEL (embedding models: the model's own context).
 * Embedding models also take `min-dimensions=` (a custom model trained for shorter vectors; registry models know).
 * Problems are returned as messages naming the variable, for the config's start-up report.
 */
import type { PolicyModel } from "../protocol/worker-protocol.ts";
import { findModel, isCustomModelName, RegistryError, resolvePolicyModel } from "../registry/registry.ts";

export interface ModelAlias {
  /** As configured (`claude-haiku-*`). */
  pattern: string;
  /** The policy model it maps to (its canonical name). */
  target: string;
  matcher: RegExp;
}

export interface ModelSettingsDefaults {
  ctxSize: number;
  maxParallel: number;
}

/** Compares model names the way callers write them: case-insensitive, `custom:` optional. */
export function modelKey(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.startsWith("custom:") ? lower.slice("custom:".length) : lower;
}

/** Parses AUXOT_MODELS or AUXOT_EMBEDDING_MODELS into policy models; problems are pushed to `problems`. */
export function parseModelList(
  variable: "AUXOT_MODELS" | "AUXOT_EMBEDDING_MODELS",
  raw: string,
  defaults: ModelSettingsDefaults,
  problems: string[],
): PolicyModel[] {
  const kind = variable === "AUXOT_MODELS" ? "chat" : "embedding";
  const out: PolicyModel[] = [];
  for (const entry of raw.split(",").map((e) => e.trim()).filter(Boolean)) {
    const [name, ...settings] = entry.split(/\s+/);
    const fields = new Map<string, string>();
    let bad = false;
    for (const setting of settings) {
      const match = /^(quantization|ctx|parallel|min-dimensions)=(\S+)$/.exec(setting);
      if (!match) {
        problems.push(
          `${variable}: "${setting}" in "${entry}" is not a setting; write e.g. "${name} quantization=Q4_K_M ctx=32768 ` +
            `parallel=2" (models separated by commas).`,
        );
        bad = true;
      } else fields.set(match[1], match[2]);
    }
    const int = (key: string, min: number, max: number): number | undefined => {
      const value = fields.get(key);
      if (value === undefined) return undefined;
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
        problems.push(`${variable}: ${key}=${value} for ${name} must be a whole number from ${min} to ${max}.`);
        bad = true;
      }
      return Number(value);
    };
    const ctxSize = int("ctx", 256, 16_777_216);
    const maxParallel = int("parallel", 1, 256);
    // Matryoshka-trained custom embedding models: the shortest `dimensions` a caller may ask for.
    const minDimensions = int("min-dimensions", 1, 65_536);
    if (minDimensions !== undefined && kind === "chat") {
      problems.push(`${variable}: min-dimensions is a setting of embedding models (AUXOT_EMBEDDING_MODELS).`);
      bad = true;
    }
    let resolved;
    try {
      resolved = resolvePolicyModel(name, fields.get("quantization"));
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      problems.push(`${variable}: ${err.message}`);
      continue;
    }
    if (bad) continue;
    const registered = findModel(resolved.name);
    const capabilities = registered?.capabilities ?? [kind];
    if (registered && kind === "embedding" && !capabilities.includes("embedding")) {
      problems.push(
        `${variable}: "${registered.name}" is a chat model, not an embedding model; list it in AUXOT_MODELS.`,
      );
      continue;
    }
    if (registered && kind === "chat" && capabilities.includes("embedding")) {
      problems.push(`${variable}: "${registered.name}" is an embedding model; list it in AUXOT_EMBEDDING_MODELS.`);
      continue;
    }
    out.push({
      ...resolved,
      kind,
      ...(kind === "chat"
        ? { ctxSize: ctxSize ?? defaults.ctxSize }
        : ctxSize ?? registered?.defaultContext
        ? { ctxSize: ctxSize ?? registered?.defaultContext }
        : {}),
      maxParallel: maxParallel ?? defaults.maxParallel,
      capabilities: kind === "embedding" && !capabilities.includes("embedding")
        ? [...capabilities, "embedding"]
        : capabilities,
      ...(registered?.embedding?.dimensions ? { dimensions: registered.embedding.dimensions } : {}),
      ...(minDimensions ?? registered?.embedding?.minDimensions
        ? { minDimensions: minDimensions ?? registered?.embedding?.minDimensions }
        : {}),
    });
  }
  return out;
}

/** Refuses two entries for one model (by `modelKey`), naming the variables. */
export function checkDistinct(models: PolicyModel[], problems: string[]): void {
  const seen = new Map<string, PolicyModel>();
  for (const model of models) {
    const key = modelKey(model.name);
    const earlier = seen.get(key);
    if (earlier) {
      problems.push(
        `AUXOT_MODELS / AUXOT_EMBEDDING_MODELS: "${model.name}" is listed twice (the default model is AUXOT_MODEL).`,
      );
    } else seen.set(key, model);
  }
}

/**
 * Parses AUXOT_MODEL_ALIASES: `PATTERN=MODEL` pairs separated by commas; `*` in a pattern matches any text; names
 * compare case-insensitively; the first matching pattern wins. Every target must be a model of the policy.
 */
export function parseAliases(raw: string, models: PolicyModel[], problems: string[]): ModelAlias[] {
  const byKey = new Map(models.map((m) => [modelKey(m.name), m]));
  const out: ModelAlias[] = [];
  for (const entry of raw.split(",").map((e) => e.trim()).filter(Boolean)) {
    const eq = entry.indexOf("=");
    const pattern = eq > 0 ? entry.slice(0, eq).trim() : "";
    const targetName = eq > 0 ? entry.slice(eq + 1).trim() : "";
    if (!pattern || !targetName || /\s/.test(pattern)) {
      problems.push(`AUXOT_MODEL_ALIASES: "${entry}" is not PATTERN=MODEL (e.g. "claude-haiku-*=Qwen3-8B").`);
      continue;
    }
    const target = byKey.get(modelKey(targetName));
    if (!target) {
      const served = models.map((m) => m.name).join(", ");
      problems.push(
        `AUXOT_MODEL_ALIASES: "${pattern}" maps to "${targetName}", which the policy does not serve (${served}).`,
      );
      continue;
    }
    const source = pattern.toLowerCase().split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(
      ".*",
    );
    out.push({ pattern, target: target.name, matcher: new RegExp(`^${source}$`) });
  }
  return out;
}

/** Whether a name is a custom model's (served from each worker's own file). */
export const isCustom = isCustomModelName;
