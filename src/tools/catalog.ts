/**
 * Which server-side tools this router offers right now: the tools that connected tools workers advertise
 * (`WorkerInfo.tools` in the fleet view), narrowed to AUXOT_ALLOWED_TOOLS when it is set (empty = all). The
 * fleet is read at most every couple of seconds per instance: every chat request consults the catalog, and on
 * Upstash each read is a billed command. Without AUXOT_TOOLS_KEY_HASH no tools worker can connect, so the store
 * is not asked at all.
 */
import type { RouterContext } from "../dispatch/context.ts";
import { type FleetView, fleetView } from "../policy/fleet-view.ts";
import type { ToolDefinition } from "../protocol/chat.ts";
import type { FleetStatus } from "../store/store.ts";

const CACHE_MS = 2_000;

/** The catalog of each fleet view read (fleet-view.ts keeps only the last one per instance). */
const catalogs = new WeakMap<FleetView, ToolDefinition[]>();

/**
 * The server tools available now (first advertiser's definition wins when workers disagree), from the instance's
 * fleet view shared with the model check (src/policy/fleet-view.ts): a chat request after a quiet moment reads the
 * fleet once, not once here and once there. A request never awaits another's read in flight.
 */
export async function serverTools(ctx: RouterContext): Promise<ToolDefinition[]> {
  if (!ctx.config.keyHashes.tools) return [];
  const view = await fleetView(ctx, CACHE_MS);
  let tools = catalogs.get(view);
  if (!tools) {
    tools = catalogOf(ctx, view.fleet);
    catalogs.set(view, tools);
  }
  return tools;
}

/** One server tool by name, if available now. */
export async function serverTool(ctx: RouterContext, name: string): Promise<ToolDefinition | undefined> {
  return (await serverTools(ctx)).find((t) => t.name === name);
}

function catalogOf(ctx: RouterContext, fleet: FleetStatus): ToolDefinition[] {
  const allowed = ctx.config.allowedTools;
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
