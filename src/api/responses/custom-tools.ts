/**
 * Custom (free-form) tools of the Responses API. The model calls one like a function whose only argument is
 * `input` (to-chat.ts declares it so); this module turns the call's argument text back into the tool's raw input
 * and checks it against the tool's grammar — Lark (src/protocol/lark-grammar.ts) or a regular expression — so a
 * call whose input does not parse is never returned as valid, whichever engine produced it.
 */
import { ApiError } from "../../http/errors.ts";
import { type LarkGrammar, LarkGrammarError, larkMatches, parseLark } from "../../protocol/lark-grammar.ts";

export type CustomGrammar = { syntax: "lark" | "regex"; definition: string };

const larkCache = new Map<string, LarkGrammar>();
const regexCache = new Map<string, RegExp>();

function compiled(grammar: CustomGrammar): LarkGrammar | RegExp {
  const cache = grammar.syntax === "lark" ? larkCache : regexCache;
  let found = cache.get(grammar.definition);
  if (!found) {
    // Anchored: the whole input must match (Rust regex and JS agree on the syntax custom tools use).
    found = grammar.syntax === "lark" ? parseLark(grammar.definition) : new RegExp(`^(?:${grammar.definition})$`, "u");
    if (cache.size >= 32) cache.delete(cache.keys().next().value!);
    (cache as Map<string, LarkGrammar | RegExp>).set(grammar.definition, found);
  }
  return found;
}

/** Refuses (400) a grammar this router could not check inputs against. */
export function checkGrammar(grammar: CustomGrammar, param: string): void {
  try {
    compiled(grammar);
  } catch (error) {
    const why = error instanceof LarkGrammarError || error instanceof SyntaxError ? error.message : String(error);
    throw new ApiError(
      "invalid_request",
      `'${param}': this router cannot check inputs against this ${grammar.syntax} grammar (${why}).`,
      { param },
    );
  }
}

/**
 * The raw input of a custom tool call from the call's argument text: `{"input": "..."}` as declared, a bare JSON
 * string, or (when the model wrote neither) the text itself; then checked against the grammar when there is one.
 */
export function customToolInput(
  argumentText: string,
  grammar: CustomGrammar | undefined,
): { ok: true; input: string } | { ok: false; reason: string } {
  let input = argumentText;
  try {
    const parsed = JSON.parse(argumentText);
    if (typeof parsed === "string") input = parsed;
    else if (parsed && typeof parsed === "object" && typeof parsed.input === "string") input = parsed.input;
  } catch { /* not JSON: the text is the input */ }
  if (!grammar) return { ok: true, input };
  const checker = compiled(grammar);
  const matches = checker instanceof RegExp ? checker.test(input) : larkMatches(checker, input);
  return matches
    ? { ok: true, input }
    : { ok: false, reason: `it does not match the tool's ${grammar.syntax} grammar` };
}
