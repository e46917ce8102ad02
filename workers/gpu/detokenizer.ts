/** Streaming detokenization for the GPU engine (llama-engine.ts). */
import type { LlamaModel, Token } from "node-llama-cpp";

/** Tokens of context a token's text may depend on (leading spaces, merged bytes). */
const CONTEXT_TOKENS = 4;

/** Turns tokens into text as they come, holding back a token that ends inside a multi-byte UTF-8 character. */
export class StreamingDetokenizer {
  private readonly history: Token[] = [];
  private pending: Token[] = [];

  constructor(private readonly model: LlamaModel) {}

  push(token: Token): string {
    this.pending.push(token);
    const text = this.model.detokenize(this.pending, false, this.history.slice(-CONTEXT_TOKENS));
    if (text.endsWith("\uFFFD") && this.pending.length < 4) return "";
    this.#remember();
    return text;
  }

  flush(): string {
    if (this.pending.length === 0) return "";
    const text = this.model.detokenize(this.pending, false, this.history.slice(-CONTEXT_TOKENS));
    this.#remember();
    return text;
  }

  /** Keeps only the tokens the next one may need as context: a long answer's history does not grow. */
  #remember(): void {
    this.history.push(...this.pending);
    if (this.history.length > CONTEXT_TOKENS * 4) this.history.splice(0, this.history.length - CONTEXT_TOKENS);
    this.pending = [];
  }
}
