/**
 * Responses API tools → internal tool definitions, and how each one's calls are shown again (`ToolShape`).
 *
 * - `function`: as is. `namespace`: flattened — function `f` of namespace `ns` is the internal tool `ns__f`, and its
 *   calls are shown with `namespace: "ns"` and the short name again.
 * - `custom`: a tool whose arguments are `{"input": string}` with `freeform` set (src/protocol/chat.ts); a grammar
 *   this router could not check inputs against is refused.
 * - `tool_search` with `execution: "client"` (Codex's deferred-tool discovery): a function the model calls with
 *   `{query, limit}`, shown as a `tool_search_call`; the client runs the search and sends back a
 *   `tool_search_output` whose tools are offered from then on (to-chat.ts). A server-side search is refused.
 * - Hosted tools that only add to what the model may do (web search) are accepted and not offered; other hosted
 *   tools (file search, code interpreter, computer use, MCP, image generation, hosted shells) are refused.
 * Tools come from `tools`, from `additional_tools` input items and from `tool_search_output` items.
 */
import type { z } from "zod";
import { ApiError } from "../../http/errors.ts";
import type { ToolChoice, ToolDefinition } from "../../protocol/chat.ts";
import { parseBody } from "../openai/to-chat.ts";
import { checkGrammar } from "./custom-tools.ts";
import {
  AllowedToolsChoice,
  CustomTool,
  DROPPED_HOSTED_TOOLS,
  FunctionTool,
  NamedToolChoice,
  NamespaceTool,
  type ResponseCreateRequest,
  ToolSearchTool,
} from "./schema.ts";

/** How a call to an internal tool is shown to the caller. */
export interface ToolShape {
  kind: "function" | "custom" | "tool_search";
  name: string;
  namespace?: string;
  /** A custom tool's grammar, against which its input is checked. */
  grammar?: { syntax: "lark" | "regex"; definition: string };
}

/** A tool as the request declares it, with the parameter path errors name. */
export interface DeclaredTool {
  tool: { type: string };
  param: string;
  /** Found by a client-side tool search: a repeat of a known tool is no error. */
  discovered?: boolean;
}

export const TOOL_SEARCH = "tool_search";

function refuse(param: string, why: string): never {
  throw new ApiError("invalid_request", `'${param}' is not supported by this router: ${why}`, { param });
}

export function translateTools(declared: DeclaredTool[]): {
  tools: ToolDefinition[];
  shapes: Record<string, ToolShape>;
} {
  const tools: ToolDefinition[] = [];
  const shapes: Record<string, ToolShape> = {};
  for (const { tool, param, discovered } of declared) {
    const add = (definition: ToolDefinition, shape: ToolShape) => {
      if (shapes[definition.name]) {
        if (discovered) return;
        throw new ApiError("invalid_request", `Duplicate tool name '${definition.name}' in 'tools'.`, {
          param: "tools",
        });
      }
      tools.push(definition);
      shapes[definition.name] = shape;
    };
    const at = <T extends z.ZodType>(schema: T): z.infer<T> => {
      try {
        return parseBody(schema, tool);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        throw new ApiError("invalid_request", `${param}: ${error.message}`, { param });
      }
    };
    const one = (inner: z.infer<typeof FunctionTool> | z.infer<typeof CustomTool>, at: string, namespace?: string) => {
      const name = namespace ? `${namespace}__${inner.name}` : inner.name;
      const description = inner.description ?? undefined;
      if (inner.type === "function") {
        const parameters = inner.parameters ?? { type: "object", properties: {} };
        add({ name, description, parameters }, { kind: "function", name: inner.name, namespace });
        return;
      }
      const format = inner.format?.type === "grammar" ? inner.format : undefined;
      if (format) checkGrammar(format, `${at}.format`);
      add({
        name,
        description,
        parameters: {
          type: "object",
          properties: { input: { type: "string", description: "The tool's whole input, as free-form text." } },
          required: ["input"],
        },
        freeform: format ? { syntax: format.syntax, definition: format.definition } : { syntax: "text" },
      }, { kind: "custom", name: inner.name, namespace, grammar: format });
    };
    if (tool.type === "function") one(at(FunctionTool), param);
    else if (tool.type === "custom") one(at(CustomTool), param);
    else if (tool.type === "namespace") {
      const namespace = at(NamespaceTool);
      namespace.tools.forEach((inner, i) => one(inner, `${param}.tools[${i}]`, namespace.name));
    } else if (tool.type === "tool_search") {
      const search = at(ToolSearchTool);
      if (search.execution !== "client") refuse(param, "server-side tool search is not available (execution: client).");
      add({
        name: TOOL_SEARCH,
        description: search.description ?? "Searches for more tools.",
        parameters: search.parameters ?? { type: "object", properties: { query: { type: "string" } } },
      }, { kind: "tool_search", name: TOOL_SEARCH });
    } else if (!DROPPED_HOSTED_TOOLS.has(tool.type)) {
      refuse(param, `hosted tool type '${tool.type}' is not available; declare a function tool instead.`);
    }
  }
  return { tools, shapes };
}

export function translateToolChoice(
  wire: z.infer<typeof ResponseCreateRequest>["tool_choice"],
  tools: ToolDefinition[],
  shapes: Record<string, ToolShape>,
): { toolChoice: ToolChoice; offered: ToolDefinition[] } {
  if (wire == null) return { toolChoice: "auto", offered: tools };
  if (typeof wire === "string") return { toolChoice: wire, offered: tools };
  const at = <T extends z.ZodType>(schema: T) => {
    const parsed = schema.safeParse(wire);
    if (parsed.success) return parsed.data as z.infer<T>;
    throw new ApiError("invalid_request", `Invalid 'tool_choice': ${parsed.error.issues[0].message}`, {
      param: "tool_choice",
    });
  };
  if (wire.type === "allowed_tools") {
    const choice = at(AllowedToolsChoice);
    const allowed = new Set(choice.tools.map((t) => t.name ?? ""));
    return { toolChoice: choice.mode, offered: tools.filter((t) => allowed.has(shapes[t.name].name)) };
  }
  if (wire.type === "function" || wire.type === "custom") {
    const choice = at(NamedToolChoice);
    const match = tools.find((t) => shapes[t.name].name === choice.name && shapes[t.name].kind === choice.type);
    // An unknown name is reported by the router with the server tools in view (src/tools/loop.ts).
    return { toolChoice: { name: match?.name ?? choice.name }, offered: tools };
  }
  return refuse("tool_choice", `hosted tool type '${wire.type}' is not available.`);
}

/** A found tool as the model reads it in the search's result. */
export function describeFoundTools(found: { type: string }[]): string {
  const lines: string[] = [];
  for (const tool of found as { type: string; name?: string; description?: string; tools?: unknown[] }[]) {
    if (tool.type === "namespace" && Array.isArray(tool.tools)) {
      for (const inner of tool.tools as { name?: string; description?: string }[]) {
        lines.push(`- ${tool.name}__${inner.name}: ${inner.description ?? ""}`.trimEnd());
      }
    } else if (tool.name) lines.push(`- ${tool.name}: ${tool.description ?? ""}`.trimEnd());
  }
  return lines.length > 0 ? `Tools found, available from now on:\n${lines.join("\n")}` : "No tools found.";
}
