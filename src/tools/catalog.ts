/**
 * Which server-side tools this router offers right now: the tools that connected tools workers advertise
 * (`WorkerInfo.tools` in the fleet view), narrowed to AUXOT_ALLOWED_TOOLS when it is set (empty = all). The
 * fleet is read at most every couple of seconds per instance: every chat request consults the catalog, and on
 * Upstash each read is a billed command. Without AUXOT_TOOLS_KEY_HASH no tools worker can connect, so the store
 * is not asked at all.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { ToolDefinition } from "../protocol/chat.ts";

const CACHE_MS = 2_000;

const cache = new WeakMap<RouterContext, { at: number; tools: Promise<ToolDefinition[]> }>();

/** The server tools available now (first advertiser's definition wins when workers disagree). */
export function serverTools(ctx: RouterContext): Promise<ToolDefinition[]> {
  if (!ctx.config.keyHashes.tools) return Promise.resolve([]);
  const now = ctx.now();
  const hit = cache.get(ctx);
  if (hit && now - hit.at < CACHE_MS) return hit.tools;
  const entry = { at: now, tools: readCatalog(ctx) };
  cache.set(ctx, entry);
  // A failed read is not remembered: the next request asks the store again.
  entry.tools.catch(() => cache.get(ctx) === entry && cache.delete(ctx));
  return entry.tools;
}

/** One server tool by name, if available now. */
export async function serverTool(ctx: RouterContext, name: string): Promise<ToolDefinition | undefined> {
  return (await serverTools(ctx)).find((t) => t.name === name);
}

async function readCatalog(ctx: RouterContext): Promise<ToolDefinition[]> {
  const allowed = ctx.config.allowedTools;
  const fleet = await ctx.store.fleet();
  const byName = new Map<string, ToolDefinition>();
  for (const worker of fleet.workers) {
    if (worker.info.kind !== "tools") continue;
    for (const tool of worker.info.tools ?? []) {
      if (allowed.length > 0 && !allowed.includes(tool.name)) continue;
      if (!byName.has(tool.name)) byName.set(tool.name, tool);
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}
