/**
 * Runs before `deno task worker:*`: a worker needs its npm packages (node-llama-cpp, the MCP SDK), which a fresh
 * clone does not have. Without them Deno would fail with a module-resolution error; this says in one line what to run.
 *   deno run --allow-read scripts/worker-preflight.ts gpu|cli|tools
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const NEEDS: Record<string, string[]> = {
  gpu: ["node-llama-cpp", "@huggingface/jinja"],
  cli: ["@modelcontextprotocol/sdk"],
  tools: ["@modelcontextprotocol/sdk"],
};

/** The packages a worker kind needs that `root`/node_modules lacks. */
export function missingWorkerPackages(kind: string, root: string): string[] {
  return (NEEDS[kind] ?? []).filter((name) => !existsSync(`${root}/node_modules/${name}/package.json`));
}

if (import.meta.main) {
  const kind = Deno.args[0] ?? "";
  const root = fileURLToPath(new URL("..", import.meta.url));
  const missing = missingWorkerPackages(kind, root);
  if (missing.length > 0) {
    console.error(
      `The ${kind} worker needs its npm packages (${missing.join(", ")}): run \`node bin/auxot-worker-install.mjs\` ` +
        `in ${root} (it picks the CUDA/Vulkan/Metal build for this machine), then this command again.`,
    );
    Deno.exit(1);
  }
}
