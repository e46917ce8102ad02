/**
 * OpenAI request → internal ChatRequest. What the router cannot honour (n > 1, logprobs, logit_bias, penalties,
 * audio) is refused with a 400 naming the parameter rather than silently dropped.
 */
import type { z } from "zod";
import { ApiError } from "../../http/errors.ts";
import type { ChatMessage, ChatRequest, ContentPart } from "../../protocol/chat.ts";
import { ChatCompletionRequest, CompletionRequest, type OpenAIMessage } from "./schema.ts";

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const param = issue.path.join(".");
  throw new ApiError("invalid_request", param ? `Invalid value for '${param}': ${issue.message}` : issue.message, {
    param: param || undefined,
  });
}

function unsupported(param: string, why: string): never {
  throw new ApiError("invalid_request", `'${param}' is not supported by this router: ${why}`, { param });
}

type Sampling = z.infer<typeof ChatCompletionRequest> | z.infer<typeof CompletionRequest>;

/** Checks the parameters shared by both endpoints and returns their internal form. */
function sampling(body: Sampling, maxTokens: number | null | undefined) {
  if ((body.n ?? 1) !== 1) unsupported("n", "only one choice (n=1) is generated per request.");
  if (body.logprobs) unsupported("logprobs", "log probabilities are not reported.");
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) {
    unsupported("logit_bias", "not applied by the engine.");
  }
  if (body.presence_penalty) unsupported("presence_penalty", "only 0 is supported.");
  if (body.frequency_penalty) unsupported("frequency_penalty", "only 0 is supported.");
  const stop = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    requestedModel: body.model,
    maxTokens: maxTokens ?? undefined,
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
    seed: body.seed ?? undefined,
    stop: stop.filter((s) => s.length > 0),
  };
}

export function chatCompletionToChat(raw: unknown): ChatRequest {
  const body = parseBody(ChatCompletionRequest, raw);
  if (body.top_logprobs != null) unsupported("top_logprobs", "log probabilities are not reported.");
  if (body.audio != null || body.modalities?.some((m) => m !== "text")) unsupported("modalities", "only text output.");
  if (body.prediction != null) unsupported("prediction", "predicted outputs are not supported.");
  const toolChoice = body.tool_choice == null
    ? "auto"
    : typeof body.tool_choice === "string"
    ? body.tool_choice
    : { name: body.tool_choice.function.name };
  const tools = (body.tools ?? []).map((t) => ({
    name: t.function.name,
    description: t.function.description,
    parameters: t.function.parameters ?? { type: "object", properties: {} },
  }));
  // Whether a forced tool exists is checked where server tools are known too (src/tools/loop.ts).
  const format = body.response_format;
  const effort = body.reasoning_effort;
  return {
    ...sampling(body, body.max_completion_tokens ?? body.max_tokens),
    messages: body.messages.map(toMessage),
    tools,
    toolChoice,
    responseFormat: format == null || format.type === "text"
      ? undefined
      : format.type === "json_object"
      ? { type: "json_object" }
      : { type: "json_schema", name: format.json_schema.name, schema: format.json_schema.schema ?? {} },
    reasoning: effort == null ? undefined : effort === "none" ? { enabled: false } : { enabled: true, effort },
  };
}

export function completionToChat(raw: unknown): ChatRequest {
  const body = parseBody(CompletionRequest, raw);
  if (body.echo) unsupported("echo", "the prompt is not echoed.");
  if ((body.best_of ?? 1) !== 1) unsupported("best_of", "only one completion is generated.");
  if (body.suffix) unsupported("suffix", "insertion is not supported.");
  return {
    ...sampling(body, body.max_tokens ?? 16),
    messages: [],
    tools: [],
    toolChoice: "auto",
    prompt: typeof body.prompt === "string" ? body.prompt : body.prompt[0],
  };
}

function toMessage(message: OpenAIMessage): ChatMessage {
  switch (message.role) {
    case "system":
    case "developer":
      return { role: "system", content: parts(message.content) };
    case "user":
      return { role: "user", content: parts(message.content) };
    case "tool":
      return { role: "tool", toolCallId: message.tool_call_id, content: parts(message.content) };
    case "assistant":
      return {
        role: "assistant",
        content: parts(message.content ?? []),
        ...(message.reasoning_content ? { reasoning: [{ text: message.reasoning_content }] } : {}),
        ...(message.tool_calls?.length
          ? {
            toolCalls: message.tool_calls.map((c) => ({
              id: c.id,
              name: c.function.name,
              arguments: c.function.arguments,
            })),
          }
          : {}),
      };
  }
}

type WirePart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } } | {
  type: "refusal";
  refusal: string;
} | { type: "input_audio" | "file" };

function parts(content: string | WirePart[]): ContentPart[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part): ContentPart => {
    switch (part.type) {
      case "text":
        return { type: "text", text: part.text };
      case "refusal":
        return { type: "text", text: part.refusal };
      case "image_url":
        return { type: "image", url: part.image_url.url };
      default:
        return unsupported(`messages.content.${part.type}`, "only text and image parts are accepted.");
    }
  });
}
