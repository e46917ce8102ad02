/**
 * OpenAI Responses API request schemas (`POST /v1/responses`), after the openai SDK's `ResponseCreateParams`.
 * Known fields are checked strictly (a wrong type is a 400 naming the field); unknown fields pass, since clients
 * add new ones faster than any router. Input items are checked one by one (to-chat.ts) so that an unsupported
 * item type is named in the error.
 */
import { z } from "zod";

const InputText = z.object({ type: z.literal("input_text"), text: z.string() });
const InputImage = z.object({
  type: z.literal("input_image"),
  image_url: z.string().nullish(),
  file_id: z.string().nullish(),
  detail: z.string().nullish(),
});
const OutputText = z.object({ type: z.literal("output_text"), text: z.string() });
const Refusal = z.object({ type: z.literal("refusal"), refusal: z.string() });
const Unsupported = z.object({ type: z.enum(["input_file", "input_audio"]) });
export const ContentPart = z.discriminatedUnion("type", [InputText, InputImage, OutputText, Refusal, Unsupported]);
export type ContentPart = z.infer<typeof ContentPart>;

export const MessageItem = z.object({
  type: z.literal("message").optional(),
  role: z.enum(["user", "assistant", "system", "developer"]),
  content: z.union([z.string(), z.array(ContentPart)]),
});

export const FunctionCallItem = z.object({
  type: z.literal("function_call"),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  namespace: z.string().nullish(),
});

const Output = z.union([z.string(), z.array(ContentPart)]);

export const FunctionCallOutputItem = z.object({
  type: z.literal("function_call_output"),
  call_id: z.string().min(1),
  output: Output,
});

export const CustomToolCallItem = z.object({
  type: z.literal("custom_tool_call"),
  call_id: z.string().min(1),
  name: z.string().min(1),
  input: z.string(),
  namespace: z.string().nullish(),
});

export const CustomToolCallOutputItem = z.object({
  type: z.literal("custom_tool_call_output"),
  call_id: z.string().min(1),
  output: Output,
});

export const ToolSearchCallItem = z.object({
  type: z.literal("tool_search_call"),
  call_id: z.string().nullish(),
  arguments: z.unknown(),
});

export const ToolSearchOutputItem = z.object({
  type: z.literal("tool_search_output"),
  call_id: z.string().nullish(),
  tools: z.array(z.looseObject({ type: z.string() })),
});

export const AdditionalToolsItem = z.object({
  type: z.literal("additional_tools"),
  tools: z.array(z.looseObject({ type: z.string() })),
});

export const ReasoningItem = z.object({
  type: z.literal("reasoning"),
  id: z.string().nullish(),
  summary: z.array(z.object({ type: z.string(), text: z.string() })).default([]),
  content: z.array(z.object({ type: z.string(), text: z.string() })).nullish(),
  encrypted_content: z.string().nullish(),
});

const toolName = z.string().regex(/^[a-zA-Z0-9_-]{1,128}$/, "tool names are 1–128 of a-z, A-Z, 0-9, _ -");

export const FunctionTool = z.object({
  type: z.literal("function"),
  name: toolName,
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

export const CustomTool = z.object({
  type: z.literal("custom"),
  name: toolName,
  description: z.string().nullish(),
  format: z.discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("grammar"), syntax: z.enum(["lark", "regex"]), definition: z.string().min(1) }),
  ]).nullish(),
});

export const NamespaceTool = z.object({
  type: z.literal("namespace"),
  name: toolName,
  description: z.string().nullish(),
  tools: z.array(z.discriminatedUnion("type", [FunctionTool, CustomTool])),
});

export const ToolSearchTool = z.object({
  type: z.literal("tool_search"),
  execution: z.enum(["server", "client"]).nullish(),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
});

/** Hosted tools that only add to what the model may do (a search): accepted and not offered (README). */
export const DROPPED_HOSTED_TOOLS = new Set([
  "web_search",
  "web_search_preview",
  "web_search_preview_2025_03_11",
  "web_search_2025_08_26",
]);

export const Tool = z.looseObject({ type: z.string() });

const ToolChoice = z.union([z.enum(["none", "auto", "required"]), z.looseObject({ type: z.string() })]);

export const NamedToolChoice = z.object({ type: z.enum(["function", "custom"]), name: z.string() });
export const AllowedToolsChoice = z.object({
  type: z.literal("allowed_tools"),
  mode: z.enum(["auto", "required"]),
  tools: z.array(z.looseObject({ type: z.string(), name: z.string().optional() })),
});

const TextFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    name: z.string().min(1),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().nullish(),
    strict: z.boolean().nullish(),
  }),
]);

export const ResponseCreateRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.looseObject({ type: z.string().optional() }))]).nullish(),
  instructions: z.string().nullish(),
  stream: z.boolean().nullish(),
  store: z.boolean().nullish(),
  background: z.boolean().nullish(),
  previous_response_id: z.string().nullish(),
  conversation: z.unknown().optional(),
  prompt: z.unknown().optional(),
  tools: z.array(Tool).nullish(),
  tool_choice: ToolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  max_output_tokens: z.number().int().positive().nullish(),
  max_tool_calls: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  text: z.object({ format: TextFormat.nullish(), verbosity: z.enum(["low", "medium", "high"]).nullish() }).nullish(),
  reasoning: z.object({
    effort: z.enum(["none", "minimal", "low", "medium", "high", "xhigh"]).nullish(),
    summary: z.enum(["auto", "concise", "detailed"]).nullish(),
    generate_summary: z.enum(["auto", "concise", "detailed"]).nullish(),
  }).nullish(),
  include: z.array(z.string()).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  prompt_cache_key: z.string().nullish(),
  truncation: z.enum(["auto", "disabled"]).nullish(),
  user: z.string().nullish(),
  safety_identifier: z.string().nullish(),
  service_tier: z.string().nullish(),
});
export type ResponseCreateRequest = z.infer<typeof ResponseCreateRequest>;
