/**
 * The JSON schemas the llama engine turns into sampling grammars (pure; the engine compiles them with
 * node-llama-cpp's `createGrammarForJsonSchema`):
 *
 * - `response_format` json_schema / json_object;
 * - a forced tool call (tool_choice "required" or a named tool): the prompt is extended with the model's call opener
 *   (`<tool_call>\n`, the Hermes/Qwen syntax the output parser reads) and the grammar then admits exactly
 *   `{"name": <one of the tools>, "arguments": <that tool's parameters>}`, after which only end-of-generation is
 *   possible. The engine closes the call itself.
 */
import type { ResponseFormat, ToolChoice, ToolDefinition } from "../../src/protocol/chat.ts";

export type JsonSchema = Record<string, unknown>;

/** Text the engine appends to the prompt before a forced call, and feeds to the output parser after it. */
export const FORCED_CALL_OPEN = "<tool_call>\n";
export const FORCED_CALL_CLOSE = "\n</tool_call>";

export type OutputConstraint =
  | { kind: "json_schema"; schema: JsonSchema }
  /** Any JSON value (json_object, or a schema the grammar compiler rejected). */
  | { kind: "json" }
  | { kind: "tool_call"; schema: JsonSchema };

/** A tool's parameter schema as a grammar source: an empty `{}` (any arguments) becomes "any object". */
function argumentsSchema(parameters: JsonSchema): JsonSchema {
  return Object.keys(parameters).length === 0 ? { type: "object" } : parameters;
}

function callSchema(tool: ToolDefinition): JsonSchema {
  return {
    type: "object",
    properties: { name: { const: tool.name }, arguments: argumentsSchema(tool.parameters) },
    required: ["name", "arguments"],
  };
}

/**
 * The constraint a request puts on the output, if any. A forced tool call wins over response_format (the answer is
 * the call). Throws when tool_choice names a tool the request does not define.
 */
export function outputConstraint(
  tools: readonly ToolDefinition[],
  toolChoice: ToolChoice,
  responseFormat: ResponseFormat | undefined,
): OutputConstraint | undefined {
  if (typeof toolChoice === "object") {
    const tool = tools.find((candidate) => candidate.name === toolChoice.name);
    if (!tool) throw new Error(`tool_choice names "${toolChoice.name}", which is not among the request's tools`);
    return { kind: "tool_call", schema: callSchema(tool) };
  }
  if (toolChoice === "required" && tools.length > 0) {
    const schemas = tools.map(callSchema);
    return { kind: "tool_call", schema: schemas.length === 1 ? schemas[0] : { oneOf: schemas } };
  }
  if (responseFormat?.type === "json_schema") return { kind: "json_schema", schema: responseFormat.schema };
  if (responseFormat?.type === "json_object") return { kind: "json" };
  return undefined;
}
