/**
 * Grammars for constrained output on the GPU engine (llama-engine.ts): compiled once per schema or custom-tool
 * grammar and kept (64 at most), since compiling a JSON schema's grammar costs more than a short answer.
 */
import type { GbnfJsonObjectSchema, Llama, LlamaGrammar } from "node-llama-cpp";
import type { OutputConstraint } from "./grammar.ts";

export class GrammarCache {
  readonly #grammars = new Map<string, Promise<LlamaGrammar>>();

  /** The grammar for `constraint`, or for the custom tool grammar `gbnf` when given (falling back to the schema's). */
  get(
    llama: Llama,
    constraint: OutputConstraint,
    gbnf?: string,
    log?: (message: string) => void,
  ): Promise<LlamaGrammar> {
    const key = gbnf ?? (constraint.kind === "json" ? "json" : JSON.stringify(constraint.schema));
    let grammar = this.#grammars.get(key);
    if (!grammar) {
      const schemaGrammar = () =>
        constraint.kind === "json"
          ? llama.getGrammarFor("json")
          // Schemas arrive as plain JSON; its schema types only describe literal schemas, so the type is asserted (any schema kind works).
          : llama.createGrammarForJsonSchema(constraint.schema as unknown as GbnfJsonObjectSchema).catch((error) => {
            log?.(`schema not supported by the grammar compiler (${error}); constraining to any JSON`);
            return llama.getGrammarFor("json");
          });
      grammar = gbnf
        ? llama.createGrammar({ grammar: gbnf }).catch((error) => {
          log?.(`custom tool grammar rejected by llama.cpp (${error}); input checked after`);
          return schemaGrammar();
        })
        : schemaGrammar();
      if (this.#grammars.size >= 64) this.#grammars.delete(this.#grammars.keys().next().value ?? "");
      this.#grammars.set(key, grammar);
    }
    return grammar;
  }
}

/** Text of a grammar's stop triggers (node-llama-cpp's JSON grammars end with "\n\n\n\n" once the value is done). */
export function triggersOf(grammar: LlamaGrammar): string[] {
  return grammar.stopGenerationTriggers.flatMap((trigger) => {
    if (typeof trigger === "string") return [trigger];
    if (Array.isArray(trigger)) return trigger.every((part) => typeof part === "string") ? [trigger.join("")] : [];
    return [trigger.toString()];
  }).filter((trigger) => trigger.length > 0);
}
