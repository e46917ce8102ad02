/**
 * The internal chat request: one shape for every API flavour (OpenAI, Anthropic) and every worker kind
 * (GPU, CLI). API transforms produce it; workers consume it. It travels inside a job over the worker protocol,
 * so it is a zod schema shared by the router and the workers.
 */
import { z } from "zod";

export const TextPart = z.object({ type: z.literal("text"), text: z.string() });
export const ImagePart = z.object({
  type: z.literal("image"),
  /** data: URL (base64) or http(s) URL, passed to the worker untouched. */
  url: z.string(),
  mediaType: z.string().optional(),
});
export const ContentPart = z.discriminatedUnion("type", [TextPart, ImagePart]);
export type ContentPart = z.infer<typeof ContentPart>;

export const ToolCall = z.object({
  id: z.string(),
  name: z.string(),
  /** JSON text of the arguments, as the model produced it. */
  arguments: z.string(),
});
export type ToolCall = z.infer<typeof ToolCall>;

/** Reasoning produced by a model in an earlier turn, kept intact (Anthropic signatures included). */
export const ReasoningPart = z.object({
  text: z.string(),
  signature: z.string().optional(),
  /** Anthropic `redacted_thinking` data, opaque. */
  redacted: z.string().optional(),
});
export type ReasoningPart = z.infer<typeof ReasoningPart>;

export const ChatMessage = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: z.array(ContentPart) }),
  z.object({ role: z.literal("user"), content: z.array(ContentPart) }),
  z.object({
    role: z.literal("assistant"),
    content: z.array(ContentPart),
    reasoning: z.array(ReasoningPart).optional(),
    toolCalls: z.array(ToolCall).optional(),
  }),
  z.object({
    role: z.literal("tool"),
    toolCallId: z.string(),
    content: z.array(ContentPart),
    isError: z.boolean().optional(),
  }),
]);
export type ChatMessage = z.infer<typeof ChatMessage>;

export const ToolDefinition = z.object({
  name: z.string(),
  description: z.string().optional(),
  /** JSON Schema of the arguments, kept whole ($defs, anyOf, ... are never flattened). */
  parameters: z.record(z.string(), z.unknown()),
  /**
   * A free-form tool (OpenAI Responses `custom`): the model writes one string, carried as `{"input": "..."}` in the
   * call's arguments (so `parameters` says exactly that), optionally in a grammar's language. Engines that can
   * constrain sampling by the grammar do; the router checks the input against it either way.
   */
  freeform: z.object({ syntax: z.enum(["text", "lark", "regex"]), definition: z.string().optional() }).optional(),
});
export type ToolDefinition = z.infer<typeof ToolDefinition>;

export const ToolChoice = z.union([
  z.literal("auto"),
  z.literal("none"),
  z.literal("required"),
  z.object({ name: z.string() }),
]);
export type ToolChoice = z.infer<typeof ToolChoice>;

export const ResponseFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({ type: z.literal("json_schema"), name: z.string().optional(), schema: z.record(z.string(), z.unknown()) }),
]);
export type ResponseFormat = z.infer<typeof ResponseFormat>;

export const DeclaredServerTool = z.object({
  /** The tools-worker tool that runs it. */
  tool: z.enum(["web_search", "web_fetch"]),
  /** The name the model calls it by (Anthropic's `name`, usually the same). */
  name: z.string(),
  /** The caller's versioned type, e.g. web_search_20250305. */
  type: z.string(),
  maxUses: z.number().int().positive().optional(),
  allowedDomains: z.array(z.string()).optional(),
  blockedDomains: z.array(z.string()).optional(),
  /** Two-letter country code from `user_location`, passed to the search. */
  country: z.string().optional(),
});
export type DeclaredServerTool = z.infer<typeof DeclaredServerTool>;

export const ChatRequest = z.object({
  /** The model name the caller asked for (informational: the policy decides what serves it). */
  requestedModel: z.string(),
  messages: z.array(ChatMessage),
  tools: z.array(ToolDefinition).default([]),
  toolChoice: ToolChoice.default("auto"),
  maxTokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  topP: z.number().min(0).max(1).optional(),
  topK: z.number().int().min(0).optional(),
  seed: z.number().int().optional(),
  stop: z.array(z.string()).default([]),
  responseFormat: ResponseFormat.optional(),
  /** Reasoning control: off, on with an optional token budget, or an effort level. */
  reasoning: z.object({
    enabled: z.boolean(),
    budgetTokens: z.number().int().positive().optional(),
    effort: z.enum(["minimal", "low", "medium", "high"]).optional(),
  }).optional(),
  /**
   * Legacy text completion: continue this raw text without a chat template (`messages` is then empty).
   * Set only by the OpenAI `POST /v1/completions` endpoint.
   */
  prompt: z.string().optional(),
  /** A stable key for the conversation (e.g. Claude Code's session id), used for prompt-cache affinity. */
  conversationKey: z.string().optional(),
  /**
   * Server tools the caller declared (Anthropic's `web_search_*` / `web_fetch_*`): the router's tool loop runs them
   * on tools workers and shows their calls and results to the caller. Removed before a job reaches a worker.
   */
  serverTools: z.array(DeclaredServerTool).optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;
export type ChatRequestInput = z.input<typeof ChatRequest>;
