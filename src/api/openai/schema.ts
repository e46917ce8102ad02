/**
 * OpenAI Chat Completions (and legacy Completions) request schemas. Known fields are checked strictly (a wrong
 * type is a 400 naming the field); unknown fields pass, since SDKs add new ones faster than any router.
 */
import { z } from "zod";

const TextPart = z.object({ type: z.literal("text"), text: z.string() });
const ImagePart = z.object({
  type: z.literal("image_url"),
  image_url: z.object({ url: z.string(), detail: z.string().optional() }),
});
const RefusalPart = z.object({ type: z.literal("refusal"), refusal: z.string() });
const UnsupportedPart = z.object({ type: z.enum(["input_audio", "file"]) });
const UserPart = z.discriminatedUnion("type", [TextPart, ImagePart, UnsupportedPart]);

const Content = <T extends z.ZodType>(part: T) => z.union([z.string(), z.array(part)]);

const ToolCall = z.object({
  id: z.string(),
  type: z.literal("function").default("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const OpenAIMessage = z.discriminatedUnion("role", [
  z.object({ role: z.enum(["system", "developer"]), content: Content(TextPart), name: z.string().optional() }),
  z.object({ role: z.literal("user"), content: Content(UserPart), name: z.string().optional() }),
  z.object({
    role: z.literal("assistant"),
    content: Content(z.discriminatedUnion("type", [TextPart, RefusalPart])).nullish(),
    reasoning_content: z.string().nullish(),
    tool_calls: z.array(ToolCall).nullish(),
    name: z.string().optional(),
  }),
  z.object({ role: z.literal("tool"), content: Content(TextPart), tool_call_id: z.string() }),
]);
export type OpenAIMessage = z.infer<typeof OpenAIMessage>;

const Tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, "tool names are 1–128 of a-z, A-Z, 0-9, _ . -"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

const Sampling = {
  model: z.string().min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().positive().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  logprobs: z.boolean().nullish(),
  user: z.string().optional(),
};

export const ChatCompletionRequest = z.looseObject({
  ...Sampling,
  messages: z.array(OpenAIMessage).min(1, "messages must contain at least one message"),
  max_completion_tokens: z.number().int().positive().nullish(),
  tools: z.array(Tool).nullish(),
  tool_choice: z.union([
    z.enum(["none", "auto", "required"]),
    z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
  ]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z.discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z.string(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullish(),
      }),
    }),
  ]).nullish(),
  reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high"]).nullish(),
  top_logprobs: z.number().int().nullish(),
  modalities: z.array(z.string()).nullish(),
  audio: z.unknown().optional(),
  prediction: z.unknown().optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.looseObject({
  ...Sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1)]),
  echo: z.boolean().nullish(),
  best_of: z.number().int().nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;
