/**
 * `deno task models [FILTER] [--json]`: lists the embedded model registry. FILTER keeps models whose name
 * contains it (case-insensitive); --json prints the matching registry entries as JSON instead of a table.
 */
import process from "node:process";
import { formatModelTable, listModels, suggestModels } from "../src/registry/registry.ts";

function main(args: string[]): number {
  const json = args.includes("--json");
  const filter = args.find((arg) => !arg.startsWith("--"))?.toLowerCase();
  const models = listModels().filter((model) => !filter || model.name.toLowerCase().includes(filter));
  if (json) {
    process.stdout.write(JSON.stringify(models, null, 2) + "\n");
    return 0;
  }
  if (models.length === 0) {
    const suggestions = filter ? suggestModels(filter) : [];
    const hint = suggestions.length > 0 ? ` Did you mean: ${suggestions.join(", ")}?` : "";
    process.stderr.write(`No model matches "${filter}".${hint}\n`);
    return 1;
  }
  process.stdout.write(formatModelTable(models));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
