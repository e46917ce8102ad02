/**
 * What a server-side tool is to the tools worker: a definition (name, description, JSON Schema of its
 * arguments) and a `run` that turns arguments into result text. A tool-level failure (bad arguments, a refused
 * address, a missing credential, a crashing script) is thrown as `ToolError`: the engine reports it to the model
 * as an error result (`error` event, code "tool_error"), not as a broken worker. Anything else thrown is a bug.
 */
import { z } from "zod";
import type { ToolDefinition } from "../../src/protocol/chat.ts";
import type { Logger } from "../../src/log.ts";

export interface ToolContext {
  /** This tool's credentials for this call only (AUXOT_TOOLS_{TOOL}__{NAME} on the router). Never log them. */
  credentials: Record<string, string>;
  signal: AbortSignal;
  log: Logger;
}

export interface ServerTool {
  readonly definition: ToolDefinition;
  run(args: Record<string, unknown>, ctx: ToolContext): Promise<string>;
}

/** A failure the model should read and may recover from (it is an error result, not a worker failure). */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ToolError";
  }
}

/** A tool definition whose JSON Schema is generated from the zod schema that validates its arguments. */
export function defineTool<S extends z.ZodType>(
  name: string,
  description: string,
  schema: S,
): { definition: ToolDefinition; parse(args: Record<string, unknown>): z.infer<S> } {
  const { $schema: _ignored, ...parameters } = z.toJSONSchema(schema, { io: "input" }) as Record<string, unknown>;
  return {
    definition: { name, description, parameters },
    parse(args) {
      const parsed = schema.safeParse(args);
      if (parsed.success) return parsed.data;
      const problems = parsed.error.issues.map((i) =>
        `${i.path.length ? i.path.join(".") : "arguments"}: ${i.message}`
      );
      throw new ToolError(`Invalid arguments for ${name}: ${problems.join("; ")}`);
    },
  };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
