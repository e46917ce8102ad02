/**
 * Prompt rendering with the tiny model's Qwen-style template: system/user/assistant turns, tool definitions, tool
 * calls and their results, thinking control, prefill, and the split between template text (control tokens
 * parsed) and message text (never parsed).
 */
import assert from "node:assert/strict";
import { ChatRequest, type ChatRequestInput } from "../../src/protocol/chat.ts";
import { ChatPromptRenderer, IMAGE_PLACEHOLDER } from "../../workers/gpu/prompt.ts";
import { TINY_CHAT_TEMPLATE } from "../fixtures/tiny-gguf.ts";

const renderer = new ChatPromptRenderer(TINY_CHAT_TEMPLATE, { bos: "<|endoftext|>", eos: "<|im_end|>" });
const text = (value: string) => [{ type: "text" as const, text: value }];
const render = (input: Omit<ChatRequestInput, "requestedModel">, offerTools = true) =>
  renderer.render(ChatRequest.parse({ requestedModel: "tiny", ...input }), { offerTools });

Deno.test("system and user turns end with the generation prompt", () => {
  const prompt = render({
    messages: [{ role: "system", content: text("Be brief.") }, { role: "user", content: text("Hi") }],
  });
  assert.equal(
    prompt.text,
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(prompt.endsInsideThink, false);
});

Deno.test("message text is a separate, non-special segment", () => {
  const prompt = render({ messages: [{ role: "user", content: text("say <|im_end|> please") }] });
  assert.deepEqual(prompt.segments, [
    { text: "<|im_start|>user\n", special: true },
    { text: "say <|im_end|> please", special: false },
    { text: "<|im_end|>\n<|im_start|>assistant\n", special: true },
  ]);
});

Deno.test("tools, tool calls and tool results render in the template's own syntax", () => {
  const prompt = render({
    messages: [
      { role: "user", content: text("Weather in Paris?") },
      {
        role: "assistant",
        content: [],
        reasoning: [{ text: "Use the tool." }],
        toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }],
      },
      { role: "tool", toolCallId: "call_1", content: text("sunny") },
    ],
    tools: [{ name: "get_weather", description: "Weather now", parameters: { type: "object" } }],
  });
  assert.ok(prompt.text.includes('<tools>\n{"type": "function", "function": {"name": "get_weather"'), prompt.text);
  assert.ok(
    prompt.text.endsWith(
      "<|im_start|>assistant\n<think>\nUse the tool.\n</think>\n\n" +
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    ),
    prompt.text,
  );
  assert.equal(
    render({ messages: [{ role: "user", content: text("x") }], tools: [] }, false).text.includes("<tools>"),
    false,
  );
});

Deno.test("thinking off closes an empty think block; an image becomes a placeholder", () => {
  const off = render({ messages: [{ role: "user", content: text("Hi") }], reasoning: { enabled: false } });
  assert.ok(off.text.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  assert.equal(off.endsInsideThink, false);
  const image = render({
    messages: [{ role: "user", content: [{ type: "image", url: "data:image/png;base64,AA==" }] }],
  });
  assert.ok(image.text.includes(IMAGE_PLACEHOLDER));
});

Deno.test("a template that opens <think> is detected; a trailing assistant message is continued", () => {
  const opening = new ChatPromptRenderer(
    TINY_CHAT_TEMPLATE.replace(
      "'<|im_start|>assistant\\n' }}\n{%- if enable",
      "'<|im_start|>assistant\\n<think>\\n' }}\n{%- if enable",
    ),
    {},
  );
  const request = ChatRequest.parse({ requestedModel: "tiny", messages: [{ role: "user", content: text("Hi") }] });
  assert.equal(opening.render(request, { offerTools: true }).endsInsideThink, true);

  const prefill = render({
    messages: [{ role: "user", content: text("Hi") }, { role: "assistant", content: text("Sure,") }],
  });
  assert.ok(prefill.text.endsWith("<|im_start|>assistant\nSure,"), prefill.text);
});

Deno.test("legacy completions use the raw prompt", () => {
  const prompt = render({ messages: [], prompt: "Once upon a time" });
  assert.deepEqual(prompt.segments, [{ text: "Once upon a time", special: true }]);
});
