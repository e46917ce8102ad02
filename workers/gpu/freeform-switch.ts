/**
 * Grammar for a custom tool's input once the model has chosen the tool by itself (tool_choice "auto", or "required"
 * among several tools). llama.cpp grammars apply from the start of sampling, so the engine watches the answer: when
 * the output parser announces a call of a tool whose input has a grammar, and the model has written the call in the
 * usual key order (`{"name": "apply_patch"` then at most the start of `, "arguments": {"input": "`), the engine ends
 * that evaluation and continues the same sequence under a grammar for the rest of the call
 * (workers/gpu/lark-to-gbnf.ts). After the call the grammar admits only the end of the turn: a grammar tool's call
 * is the turn's last. Anything unexpected (another key order, text after the name that is not the usual JSON) leaves
 * the answer unconstrained; the router checks the input either way.
 */
import type { ToolChoice, ToolDefinition } from "../../src/protocol/chat.ts";
import { freeformRestGrammar, hasInputGrammar } from "./freeform-grammar.ts";
import type { OutputEvent } from "./tool-call-parser.ts";

const CALL_OPEN = "<tool_call>";
/** What follows the name in a call written the usual way, whitespace removed. */
const REST_OF_OPENER = ',"arguments":{"input":"';

export class FreeformCallSwitch {
  #text = "";

  private constructor(private readonly tools: ReadonlyMap<string, ToolDefinition>) {}

  /** A switch for requests where the model may choose a grammar tool itself; undefined where it cannot. */
  static for(tools: readonly ToolDefinition[], toolChoice: ToolChoice): FreeformCallSwitch | undefined {
    if (toolChoice === "none" || typeof toolChoice === "object") return undefined; // a forced call has its grammar
    const withGrammar = tools.filter(hasInputGrammar);
    if (withGrammar.length === 0) return undefined;
    return new FreeformCallSwitch(new Map(withGrammar.map((tool) => [tool.name, tool])));
  }

  /**
   * Feeds the text the parser was just given and the events it produced. Returns the GBNF for the rest of the call
   * when a grammar tool's call has just named itself and can be continued under its grammar.
   */
  observe(text: string, events: readonly OutputEvent[]): string | undefined {
    // The preamble may be long (reasoning, text): only the current call's text matters.
    this.#text = (this.#text + text).slice(-4096);
    const call = events.find((event) => event.type === "tool_call" && this.tools.has(event.name));
    if (!call || call.type !== "tool_call") return undefined;
    const opened = this.#text.lastIndexOf(CALL_OPEN);
    const body = opened >= 0 ? this.#text.slice(opened + CALL_OPEN.length) : this.#text;
    const match = /^\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")([^]*)$/.exec(body);
    if (!match || JSON.parse(match[1]) !== call.name) return undefined;
    const written = match[2].replace(/\s+/g, "");
    if (!REST_OF_OPENER.startsWith(written)) return undefined;
    return freeformRestGrammar(this.tools.get(call.name)!, REST_OF_OPENER.slice(written.length));
  }
}
