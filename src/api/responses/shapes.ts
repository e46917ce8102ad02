/** Fixed parts of Responses API objects: the defaults a response reports, output text parts, usage. */
import type { Usage } from "../../protocol/events.ts";

/** Arguments that are not one JSON object: the call cannot be run, so the response fails. */
export function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Response fields this router always reports the same way (the echo of the request overrides them). */
export const defaults = {
  instructions: null,
  max_output_tokens: null,
  max_tool_calls: null,
  metadata: {},
  parallel_tool_calls: true,
  reasoning: { effort: null, summary: null },
  temperature: 1,
  text: { format: { type: "text" }, verbosity: "medium" },
  tool_choice: "auto",
  tools: [],
  top_logprobs: 0,
  top_p: 1,
  truncation: "disabled",
  user: null,
};

export function textPart(text: string) {
  return { type: "output_text", annotations: [], logprobs: [], text };
}

export function usageBody(usage: Usage | undefined) {
  const u = usage ?? { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  return {
    input_tokens: u.promptTokens,
    input_tokens_details: { cached_tokens: u.cachedTokens, cache_write_tokens: u.cacheCreationTokens ?? 0 },
    output_tokens: u.completionTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens ?? 0 },
    total_tokens: u.promptTokens + u.completionTokens,
  };
}
