/**
 * The GBNF of a custom tool's call (Responses API `custom` tools with a Lark or regex grammar): the whole call for a
 * forced one, or the rest of a call the model started itself (freeform-switch.ts). The call is the JSON the output
 * parser reads (`{"name": ..., "arguments": {"input": "..."}}`); the input's language comes from lark-to-gbnf.ts.
 */
import type { ToolChoice, ToolDefinition } from "../../src/protocol/chat.ts";
import { gbnfLiteral, larkToGbnf, regexRules } from "./lark-to-gbnf.ts";

/** Whether a tool's input has a grammar (a custom tool with Lark or regex syntax). */
export function hasInputGrammar(tool: ToolDefinition): boolean {
  return tool.freeform !== undefined && tool.freeform.syntax !== "text" && !!tool.freeform.definition;
}

/** GBNF for a forced call of a custom tool with a grammar, or undefined when no such call is forced. */
export function freeformCallGrammar(tools: readonly ToolDefinition[], toolChoice: ToolChoice): string | undefined {
  const forced = typeof toolChoice === "object"
    ? tools.find((tool) => tool.name === toolChoice.name)
    : toolChoice === "required" && tools.length === 1
    ? tools[0]
    : undefined;
  if (!forced || !hasInputGrammar(forced)) return undefined;
  return freeformRestGrammar(forced, `{"name": ${JSON.stringify(forced.name)}, "arguments": {"input": "`);
}

/** `freeformCallGrammar` for a job, or undefined (logged) when the grammar does not translate. */
export function forcedFreeformGrammar(
  request: { tools: readonly ToolDefinition[]; toolChoice: ToolChoice },
  log?: (message: string) => void,
): string | undefined {
  try {
    return freeformCallGrammar(request.tools, request.toolChoice);
  } catch (error) {
    log?.(`custom tool grammar not translated (${(error as Error).message}); input checked after`);
    return undefined;
  }
}

/**
 * GBNF for the rest of a call of a grammar tool: `prefix` (the call's JSON still to come before the input), the input
 * in the tool's language, then the closing `"}}`.
 */
export function freeformRestGrammar(tool: ToolDefinition, prefix: string): string {
  const format = tool.freeform!;
  const body = format.syntax === "lark" ? larkToGbnf(format.definition!) : regexRules(format.definition!);
  const head = prefix ? `${gbnfLiteral(prefix)} ` : "";
  return `root ::= ${head}l-start "\\"}}"\n${body}`;
}
