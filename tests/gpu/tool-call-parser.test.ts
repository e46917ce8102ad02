/**
 * Unit tests of the streaming output parsers (stop sequences, `<think>` reasoning, `<tool_call>` blocks). Every
 * case is fed both whole and one character at a time, since token boundaries fall anywhere.
 */
import assert from "node:assert/strict";
import {
  ModelOutputParser,
  type ModelOutputParserOptions,
  type OutputEvent,
  partialSuffixLength,
  StopSequenceMatcher,
} from "../../workers/gpu/tool-call-parser.ts";

/** Runs the parser over chunks and merges adjacent deltas of the same kind, so chunking does not matter. */
function parse(chunks: string[], options: Partial<ModelOutputParserOptions> = {}): OutputEvent[] {
  let ids = 0;
  const parser = new ModelOutputParser({ parseToolCalls: true, newToolCallId: () => `call_${ids++}`, ...options });
  const events = [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
  const merged: OutputEvent[] = [];
  for (const event of events) {
    const last = merged.at(-1);
    if (last && (last.type === "text" || last.type === "reasoning") && last.type === event.type) {
      merged[merged.length - 1] = { ...last, text: last.text + (event as typeof last).text };
    } else if (last?.type === "tool_args" && event.type === "tool_args" && last.index === event.index) {
      merged[merged.length - 1] = { ...last, delta: last.delta + event.delta };
    } else merged.push(event);
  }
  return merged;
}

function bothWays(text: string, options: Partial<ModelOutputParserOptions> = {}): OutputEvent[] {
  const whole = parse([text], options);
  assert.deepEqual(parse([...text], options), whole, "character-by-character parse differs from whole parse");
  return whole;
}

Deno.test("partialSuffixLength finds the longest tag prefix at the end", () => {
  assert.equal(partialSuffixLength("abc<too", ["<tool_call>"]), 4);
  assert.equal(partialSuffixLength("abc<", ["<tool_call>", "<think>"]), 1);
  assert.equal(partialSuffixLength("abc", ["<tool_call>"]), 0);
  assert.equal(partialSuffixLength("<tool_call>", ["<tool_call>"]), 0);
});

Deno.test("plain text passes through, held-back tag prefixes are released", () => {
  assert.deepEqual(bothWays("a < b and <thin ice"), [{ type: "text", text: "a < b and <thin ice" }]);
  assert.deepEqual(bothWays("ends with space  "), [{ type: "text", text: "ends with space  " }]);
});

Deno.test("think blocks become reasoning, layout whitespace is dropped", () => {
  assert.deepEqual(bothWays("<think>\nLet me see.\n</think>\n\nThe answer is 4."), [
    { type: "reasoning", text: "Let me see." },
    { type: "text", text: "The answer is 4." },
  ]);
});

Deno.test("a prompt that opened <think> starts the output as reasoning", () => {
  assert.deepEqual(bothWays("hmm\n</think>\n\nok", { startInReasoning: true }), [
    { type: "reasoning", text: "hmm" },
    { type: "text", text: "ok" },
  ]);
  assert.deepEqual(bothWays("unfinished thought", { startInReasoning: true }), [
    { type: "reasoning", text: "unfinished thought" },
  ]);
});

Deno.test("tool calls are announced then their arguments streamed", () => {
  const events = bothWays(
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>',
  );
  assert.deepEqual(events, [
    { type: "text", text: "Let me check." },
    { type: "tool_call", index: 0, id: "call_0", name: "get_weather" },
    { type: "tool_args", index: 0, delta: '{"city": "Paris", "days": [1, 2]}' },
  ]);
});

Deno.test("the arguments stream starts before the call closes", () => {
  let ids = 0;
  const parser = new ModelOutputParser({ parseToolCalls: true, newToolCallId: () => `call_${ids++}` });
  const first = parser.push('<tool_call>\n{"name": "f", "arguments": {"q": "a}b');
  assert.deepEqual(first, [
    { type: "tool_call", index: 0, id: "call_0", name: "f" },
    { type: "tool_args", index: 0, delta: '{"q": "a}b' },
  ]);
  assert.deepEqual(parser.push('"}}\n</tool_call>'), [{ type: "tool_args", index: 0, delta: '"}' }]);
  assert.equal(parser.toolCallCount, 1);
});

Deno.test("several calls get increasing indexes; other key orders are parsed on close", () => {
  const events = bothWays(
    '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>\n{"arguments": {"x": 1}, "name": "b"}\n</tool_call>',
  );
  assert.deepEqual(events, [
    { type: "tool_call", index: 0, id: "call_0", name: "a" },
    { type: "tool_args", index: 0, delta: "{}" },
    { type: "tool_call", index: 1, id: "call_1", name: "b" },
    { type: "tool_args", index: 1, delta: '{"x":1}' },
  ]);
});

Deno.test("an unterminated call is closed at the end; an unparsable one is kept as text", () => {
  assert.deepEqual(bothWays('<tool_call>\n{"name": "f", "arguments": {"a": 1}}'), [
    { type: "tool_call", index: 0, id: "call_0", name: "f" },
    { type: "tool_args", index: 0, delta: '{"a": 1}' },
  ]);
  assert.deepEqual(bothWays("<tool_call>not json</tool_call>"), [
    { type: "text", text: "<tool_call>not json</tool_call>" },
  ]);
});

Deno.test("tool call tags are text when the request offered no tools", () => {
  assert.deepEqual(bothWays("<tool_call>{}</tool_call>", { parseToolCalls: false }), [
    { type: "text", text: "<tool_call>{}</tool_call>" },
  ]);
});

Deno.test("stop sequences end the text before them, across chunk boundaries", () => {
  const matcher = new StopSequenceMatcher(["END", "\n\n"]);
  assert.deepEqual(matcher.push("hello E"), { text: "hello " });
  assert.deepEqual(matcher.push("N"), { text: "" });
  assert.deepEqual(matcher.push("Dless"), { text: "", stop: "END" });

  const other = new StopSequenceMatcher(["END"]);
  assert.deepEqual(other.push("hello EN"), { text: "hello " });
  assert.deepEqual(other.push("d"), { text: "ENd" });
  assert.equal(other.flush(), "");

  const none = new StopSequenceMatcher([]);
  assert.deepEqual(none.push("abc"), { text: "abc" });
  const tail = new StopSequenceMatcher(["xyz"]);
  assert.deepEqual(tail.push("abcx"), { text: "abc" });
  assert.equal(tail.flush(), "x");
});
