/**
 * `GET /v1/models` and `GET /v1/models/{id}` for a several-model policy, from the configuration alone (no store
 * round trip, so Claude Code's 3-second discovery never waits on Redis). Every model of the policy is listed with
 * its capabilities, then every alias that is a plain name (patterns with `*` cannot be listed).
 *
 * The Anthropic flavour also lists, for each chat model without a `claude…` alias of its own, an automatic alias
 * `claude-<model>`: Claude Code keeps only ids that start with "claude" or "anthropic" in its model picker. Its
 * `display_name` names the real model.
 */
import type { Policy, PolicyModel } from "../protocol/worker-protocol.ts";
import type { ModelAlias } from "./models.ts";
import { modelKey } from "./models.ts";
import { automaticClaudeAlias, policyModels } from "./route.ts";

export interface ListedModel {
  id: string;
  model: PolicyModel;
  /** Set for an alias: the pattern it came from (or "automatic"). */
  alias?: string;
}

export function listModels(policy: Policy, aliases: readonly ModelAlias[], anthropic: boolean): ListedModel[] {
  const models = policyModels(policy);
  const out: ListedModel[] = models.map((model) => ({ id: model.name, model }));
  const listed = new Set(out.map((m) => m.id.toLowerCase()));
  for (const alias of aliases) {
    if (alias.pattern.includes("*") || listed.has(alias.pattern.toLowerCase())) continue;
    const model = models.find((m) => m.name === alias.target);
    if (!model) continue;
    listed.add(alias.pattern.toLowerCase());
    out.push({ id: alias.pattern, model, alias: alias.pattern });
  }
  if (anthropic) {
    for (const model of models.filter((m) => m.kind === "chat")) {
      const hasOwn = out.some((m) => m.alias && m.model === model && /^(claude|anthropic)/i.test(m.id));
      const id = automaticClaudeAlias(model);
      if (!hasOwn && !listed.has(id)) {
        listed.add(id);
        out.push({ id, model, alias: "automatic" });
      }
    }
  }
  return out;
}

/**
 * The model an id describes: a listed id, else the first alias pattern it matches, else — like a request naming it —
 * the default chat model.
 */
export function describeModelId(policy: Policy, aliases: readonly ModelAlias[], id: string): ListedModel {
  const lower = id.trim().toLowerCase();
  const listed = listModels(policy, aliases, true).find((m) =>
    m.id.toLowerCase() === lower || modelKey(m.id) === modelKey(id)
  );
  if (listed) return listed;
  const models = policyModels(policy);
  const alias = aliases.find((a) => a.matcher.test(lower));
  const model = alias && models.find((m) => m.name === alias.target);
  return model ? { id, model, alias: alias.pattern } : { id, model: models[0], alias: "default" };
}

/** OpenAI's model object, with Auxot's facts beside the standard fields (clients ignore what they do not know). */
export function openaiModelObject(entry: ListedModel, created: number) {
  const { model } = entry;
  return {
    id: entry.id,
    object: "model",
    created,
    owned_by: "auxot",
    ...(entry.alias ? { alias_of: model.name } : {}),
    kind: model.kind,
    ...(model.ctxSize ? { context_length: model.ctxSize } : {}),
    ...(model.dimensions ? { dimensions: model.dimensions } : {}),
    capabilities: capabilitiesOf(model),
  };
}

/** Anthropic's model object; an alias's display_name names the model that serves it. */
export function anthropicModelObject(entry: ListedModel) {
  return { type: "model", id: entry.id, display_name: entry.model.name, created_at: "1970-01-01T00:00:00Z" };
}

/**
 * What a model can do here. Tools: every chat model (tool calls are constrained by grammars on the worker).
 * Vision: not yet (workers do not pass images to llama.cpp), whatever the model card says.
 */
export function capabilitiesOf(model: PolicyModel) {
  return {
    chat: model.kind === "chat",
    tools: model.kind === "chat",
    vision: false,
    reasoning: model.capabilities.includes("reasoning"),
    embeddings: model.kind === "embedding",
  };
}

export function openaiModelsBody(policy: Policy, aliases: readonly ModelAlias[], created: number) {
  return { object: "list", data: listModels(policy, aliases, false).map((m) => openaiModelObject(m, created)) };
}

export function anthropicModelsBody(policy: Policy, aliases: readonly ModelAlias[]) {
  const data = listModels(policy, aliases, true).map(anthropicModelObject);
  return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}
