/**
 * Renders a chat request into a prompt with the model's own Jinja chat template (the GGUF's
 * `tokenizer.chat_template`), the way llama.cpp's server and Hugging Face's `apply_chat_template` do: OpenAI-shaped
 * messages (`tool_calls`, `tool` results with `tool_call_id`, `reasoning_content`), `tools`, `add_generation_prompt`
 * and `enable_thinking`, so the prompt matches what the model was trained on.
 *
 * Why not node-llama-cpp's JinjaTemplateChatWrapper: measured in 3.22.1 it renders the generation prompt as an empty
 * assistant message (so `enable_thinking=false`'s `<think></think>` never appears), drops tool call ids and
 * JSON-quotes plain-text tool results. Its one real strength — text written by users or tools is never parsed into
 * control tokens — is kept here: every message text is rendered as a unique placeholder, and the output is returned
 * as segments so the engine tokenizes template text with special tokens and message text without them.
 *
 * Images: the GPU worker serves text models, so an image part becomes a short text placeholder saying it was left
 * out (the model can then tell the user it cannot see it) instead of failing the request.
 */
import { Template } from "@huggingface/jinja";
import type { ChatMessage, ChatRequest, ContentPart } from "../../src/protocol/chat.ts";

/** A piece of the prompt: `special` pieces come from the template (control tokens parsed), others are message text. */
export interface PromptSegment {
  text: string;
  special: boolean;
}

export interface RenderedPrompt {
  segments: PromptSegment[];
  /** The prompt as plain text (placeholders filled in). */
  text: string;
  /** The prompt ends inside an open `<think>` block (the template opened it), so the output starts as reasoning. */
  endsInsideThink: boolean;
}

export const IMAGE_PLACEHOLDER = "[image omitted: this model reads text only]";

type JinjaMessage = Record<string, unknown> & { role: string };

function partsToText(parts: readonly ContentPart[]): string {
  return parts.map((part) => part.type === "text" ? part.text : IMAGE_PLACEHOLDER).join("\n");
}

/** Tool call arguments as an object (templates apply `tojson` to them); invalid JSON is passed on as text. */
function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class ChatPromptRenderer {
  private readonly template: Template;

  constructor(
    templateSource: string,
    private readonly specialTokens: { bos?: string; eos?: string },
  ) {
    this.template = new Template(templateSource);
  }

  /**
   * Renders the request. With `offerTools` false the tools are left out of the prompt (tool_choice "none").
   * When the last message is the assistant's own text it is continued (prefill) rather than closed.
   */
  render(request: ChatRequest, options: { offerTools: boolean }): RenderedPrompt {
    if (request.prompt !== undefined && request.messages.length === 0) {
      // Legacy completions: raw text, no template; control tokens in it are meant literally (as llama.cpp does).
      return { segments: [{ text: request.prompt, special: true }], text: request.prompt, endsInsideThink: false };
    }
    const nonce = crypto.randomUUID().slice(0, 8);
    const contents = new Map<string, string>();
    const rendered = this.renderWith(request, options, (text) => {
      const key = `@@auxot-${nonce}-${contents.size}@@`;
      contents.set(key, text);
      return key;
    });
    let segments = splitAtPlaceholders(rendered, contents);
    if (segments.some((segment) => segment.special && segment.text.includes(`@@auxot-${nonce}`))) {
      // The template rewrote some message text (sliced it, say), so placeholders cannot be swapped back: render the
      // real text and parse control tokens everywhere, which is what llama.cpp's server always does.
      segments = [{ text: this.renderWith(request, options, (text) => text), special: true }];
    }
    const text = segments.map((segment) => segment.text).join("");
    return { segments, text, endsInsideThink: text.lastIndexOf("<think>") > text.lastIndexOf("</think>") };
  }

  private renderWith(
    request: ChatRequest,
    options: { offerTools: boolean },
    placeholder: (text: string) => string,
  ): string {
    const last = request.messages.at(-1);
    const prefill = last?.role === "assistant" && !last.toolCalls?.length && partsToText(last.content).length > 0;
    const messages = toJinjaMessages(request.messages, placeholder);
    const context: Record<string, unknown> = {
      messages,
      add_generation_prompt: !prefill,
      bos_token: this.specialTokens.bos ?? "",
      eos_token: this.specialTokens.eos ?? "",
    };
    if (options.offerTools && request.tools.length > 0) {
      context.tools = request.tools.map((tool) => ({
        type: "function",
        function: { name: tool.name, description: tool.description ?? "", parameters: tool.parameters },
      }));
    }
    if (request.reasoning !== undefined) context.enable_thinking = request.reasoning.enabled;
    const rendered = this.template.render(context);
    const lastText = messages.at(-1)?.content;
    if (!prefill || typeof lastText !== "string") return rendered;
    // Prefill: cut right after the last assistant text so generation continues it instead of opening a new turn.
    const end = rendered.lastIndexOf(lastText);
    return end >= 0 ? rendered.slice(0, end + lastText.length) : rendered;
  }
}

function toJinjaMessages(messages: readonly ChatMessage[], placeholder: (text: string) => string): JinjaMessage[] {
  const toolNames = new Map<string, string>();
  return messages.map((message): JinjaMessage => {
    switch (message.role) {
      case "system":
      case "user":
        return { role: message.role, content: placeholder(partsToText(message.content)) };
      case "assistant": {
        const text = partsToText(message.content);
        const jinja: JinjaMessage = { role: "assistant", content: text.length > 0 ? placeholder(text) : "" };
        const reasoning = (message.reasoning ?? []).map((part) => part.text).join("");
        if (reasoning.length > 0) jinja.reasoning_content = placeholder(reasoning);
        if (message.toolCalls?.length) {
          jinja.tool_calls = message.toolCalls.map((call) => {
            toolNames.set(call.id, call.name);
            return {
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: parseArguments(call.arguments) },
            };
          });
        }
        return jinja;
      }
      case "tool": {
        const text = partsToText(message.content);
        return {
          role: "tool",
          tool_call_id: message.toolCallId,
          name: toolNames.get(message.toolCallId) ?? "",
          content: placeholder(message.isError ? `Error: ${text}` : text),
        };
      }
    }
  });
}

/** Splits the rendered template into template text (special) and message text (not special) at the placeholders. */
function splitAtPlaceholders(rendered: string, contents: Map<string, string>): PromptSegment[] {
  const segments: PromptSegment[] = [];
  let from = 0;
  for (const match of rendered.matchAll(/@@auxot-[0-9a-f]{8}-\d+@@/g)) {
    const content = contents.get(match[0]);
    if (content === undefined) continue;
    if (match.index > from) segments.push({ text: rendered.slice(from, match.index), special: true });
    if (content.length > 0) segments.push({ text: content, special: false });
    from = match.index + match[0].length;
  }
  if (from < rendered.length) segments.push({ text: rendered.slice(from), special: true });
  return segments;
}
