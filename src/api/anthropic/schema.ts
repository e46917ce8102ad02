/**
 * The Anthropic Messages API request (`POST /v1/messages`, `POST /v1/messages/count_tokens`) as zod schemas.
 *
 * Permissive where real clients send fields outside the public schema: every object is loose, so
 * `cache_control`, `context_management`, `defer_loading`, `caller`, `citations`, `display`, ... pass through and
 * are ignored by the transform unless they mean something here. Strict where a wrong value must be a 400 that
 * names the field: `model`, `max_tokens`, `messages`, the content block types allowed for each role, tool
 * definitions, `tool_choice`, `thinking`, sampling ranges. `parseMessagesRequest` turns the first zod issue into
 * an `ApiError("invalid_request")` whose message starts with the field's path (`messages.2.content.0.type: ...`),
 * like Anthropic's own validation errors.
 */
import { z } from "zod";
import { ApiError } from "../../http/errors.ts";

/** Optional fields also accept `null`: several clients send `"temperature": null` for "not set". */
const optional = <T extends z.ZodType>(schema: T) => schema.nullish();

export const TextBlock = z.looseObject({ type: z.literal("text"), text: z.string() });
export type TextBlock = z.infer<typeof TextBlock>;

/** Only base64 and URL sources: a `file` source needs the Files API, which this router does not have. */
const ImageSource = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("base64"), media_type: z.string(), data: z.string() }),
  z.looseObject({ type: z.literal("url"), url: z.string() }),
]);
export const ImageBlock = z.looseObject({ type: z.literal("image"), source: ImageSource });
export type ImageBlock = z.infer<typeof ImageBlock>;

/** Documents: plain-text and content sources become text; PDF sources are accepted (see to-chat.ts). */
export const DocumentBlock = z.looseObject({
  type: z.literal("document"),
  source: z.looseObject({
    type: z.string(),
    media_type: optional(z.string()),
    data: optional(z.string()),
    url: optional(z.string()),
    content: optional(z.union([z.string(), z.array(z.discriminatedUnion("type", [TextBlock, ImageBlock]))])),
  }),
  title: optional(z.string()),
  context: optional(z.string()),
});
export type DocumentBlock = z.infer<typeof DocumentBlock>;

export const SearchResultBlock = z.looseObject({
  type: z.literal("search_result"),
  source: z.string(),
  title: z.string(),
  content: z.array(TextBlock),
});
export type SearchResultBlock = z.infer<typeof SearchResultBlock>;

/** Sent inside a tool_result by tool search (Claude Code's deferred tools). */
export const ToolReferenceBlock = z.looseObject({ type: z.literal("tool_reference"), tool_name: z.string() });

const ToolResultContentBlock = z.discriminatedUnion("type", [
  TextBlock,
  ImageBlock,
  DocumentBlock,
  SearchResultBlock,
  ToolReferenceBlock,
]);
export type ToolResultContentBlock = z.infer<typeof ToolResultContentBlock>;

export const ToolResultBlock = z.looseObject({
  type: z.literal("tool_result"),
  tool_use_id: z.string(),
  content: optional(z.union([z.string(), z.array(ToolResultContentBlock)])),
  is_error: optional(z.boolean()),
});

export const ToolUseBlock = z.looseObject({
  type: z.literal("tool_use"),
  id: z.string(),
  name: z.string(),
  input: z.unknown(),
});

/** `signature` is required by Anthropic; a missing one is tolerated (it may come from another server). */
export const ThinkingBlock = z.looseObject({
  type: z.literal("thinking"),
  thinking: z.string(),
  signature: optional(z.string()),
});
export const RedactedThinkingBlock = z.looseObject({ type: z.literal("redacted_thinking"), data: z.string() });

const UserBlock = z.discriminatedUnion("type", [
  TextBlock,
  ImageBlock,
  DocumentBlock,
  SearchResultBlock,
  ToolResultBlock,
]);
export type UserBlock = z.infer<typeof UserBlock>;
/** A server tool's call and results, as the caller received them from an earlier answer and sends them back. */
export const ServerToolUseBlock = z.looseObject({
  type: z.literal("server_tool_use"),
  id: z.string(),
  name: z.string(),
  input: z.unknown(),
});
export const WebSearchToolResultBlock = z.looseObject({
  type: z.literal("web_search_tool_result"),
  tool_use_id: z.string(),
  content: z.unknown(),
});
export const WebFetchToolResultBlock = z.looseObject({
  type: z.literal("web_fetch_tool_result"),
  tool_use_id: z.string(),
  content: z.unknown(),
});
const AssistantBlock = z.discriminatedUnion("type", [
  TextBlock,
  ThinkingBlock,
  RedactedThinkingBlock,
  ToolUseBlock,
  ServerToolUseBlock,
  WebSearchToolResultBlock,
  WebFetchToolResultBlock,
]);
export type AssistantBlock = z.infer<typeof AssistantBlock>;

/** `role: "system"` entries are not in the older public schema, but Claude Code sends them (reminders). */
export const MessageParam = z.discriminatedUnion("role", [
  z.looseObject({ role: z.literal("user"), content: z.union([z.string(), z.array(UserBlock)]) }),
  z.looseObject({ role: z.literal("assistant"), content: z.union([z.string(), z.array(AssistantBlock)]) }),
  z.looseObject({ role: z.literal("system"), content: z.union([z.string(), z.array(TextBlock)]) }),
]);
export type MessageParam = z.infer<typeof MessageParam>;

/** A client tool (no `type`, or "custom"). */
export const ToolParam = z.looseObject({
  type: optional(z.literal("custom")),
  name: z.string().min(1),
  description: optional(z.string()),
  /** JSON Schema 2020-12, kept whole. */
  input_schema: z.record(z.string(), z.unknown()),
});
export type ToolParam = z.infer<typeof ToolParam>;

/** The server tool types that tools workers can serve: `web_search_<date>` and `web_fetch_<date>`. */
export const WEB_TOOL_TYPE = /^web_(search|fetch)_\d{8}$/;

/** Anthropic's web_search / web_fetch server tool declaration; fields beyond these are ignored. */
export const WebToolParam = z.looseObject({
  type: z.string().regex(WEB_TOOL_TYPE),
  name: z.string().min(1),
  max_uses: optional(z.number().int().positive()),
  allowed_domains: optional(z.array(z.string())),
  blocked_domains: optional(z.array(z.string())),
  user_location: optional(z.looseObject({
    type: optional(z.string()),
    city: optional(z.string()),
    region: optional(z.string()),
    country: optional(z.string()),
    timezone: optional(z.string()),
  })),
}).refine((tool) => !(tool.allowed_domains?.length && tool.blocked_domains?.length), {
  message: "use either allowed_domains or blocked_domains, not both",
});
export type WebToolParam = z.infer<typeof WebToolParam>;

/**
 * One entry of `tools`: a client tool, or a server tool by `type`. Only web_search / web_fetch server tools can
 * run here (on tools workers); any other server tool type (`bash_*`, `code_execution_*`, `computer_*`, ...) is
 * refused with a 400 that names it.
 */
const AnyToolParam = z.looseObject({ type: optional(z.string()) }).transform((tool, ctx) => {
  const schema = tool.type == null || tool.type === "custom"
    ? ToolParam
    : WEB_TOOL_TYPE.test(tool.type)
    ? WebToolParam
    : undefined;
  if (!schema) {
    ctx.addIssue({
      code: "custom",
      path: ["type"],
      message:
        `${JSON.stringify(tool.type).slice(0, 100)} is not supported: only custom tools and the web_search_* / ` +
        "web_fetch_* server tools are available on this server",
    });
    return z.NEVER;
  }
  const parsed = schema.safeParse(tool, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue } as z.core.$ZodRawIssue);
    return z.NEVER;
  }
  return parsed.data as ToolParam | WebToolParam;
});

export const ToolChoiceParam = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("auto") }),
  z.looseObject({ type: z.literal("any") }),
  z.looseObject({ type: z.literal("tool"), name: z.string() }),
  z.looseObject({ type: z.literal("none") }),
]);
export type ToolChoiceParam = z.infer<typeof ToolChoiceParam>;

export const ThinkingParam = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("enabled"), budget_tokens: z.number().int().positive() }),
  z.looseObject({ type: z.literal("disabled") }),
  z.looseObject({ type: z.literal("adaptive") }),
  z.looseObject({ type: z.literal("between_tools") }),
]);
export type ThinkingParam = z.infer<typeof ThinkingParam>;

export const OutputConfig = z.looseObject({
  /** low | medium | high | xhigh | max today; an unknown level is ignored rather than refused. */
  effort: optional(z.string()),
  format: optional(z.looseObject({ type: z.literal("json_schema"), schema: z.record(z.string(), z.unknown()) })),
});

const requestFields = {
  model: z.string().min(1),
  max_tokens: z.number().int().positive(),
  messages: z.array(MessageParam),
  system: optional(z.union([z.string(), z.array(TextBlock)])),
  stream: optional(z.boolean()),
  stop_sequences: optional(z.array(z.string())),
  temperature: optional(z.number().min(0).max(1)),
  top_p: optional(z.number().min(0).max(1)),
  top_k: optional(z.number().int().min(0)),
  metadata: optional(z.looseObject({ user_id: optional(z.string()) })),
  tools: optional(z.array(AnyToolParam)),
  tool_choice: optional(ToolChoiceParam),
  thinking: optional(ThinkingParam),
  output_config: optional(OutputConfig),
};

export const MessagesRequest = z.looseObject(requestFields);
export type MessagesRequest = z.infer<typeof MessagesRequest>;

/** count_tokens takes the same body without `max_tokens` (and ignores it when present). */
export const CountTokensRequest = z.looseObject({
  ...requestFields,
  max_tokens: optional(z.number().int().positive()),
});
export type CountTokensRequest = z.infer<typeof CountTokensRequest>;

export function parseMessagesRequest(body: unknown): MessagesRequest {
  return parseOrThrow(MessagesRequest, body);
}

export function parseCountTokensRequest(body: unknown): CountTokensRequest {
  return parseOrThrow(CountTokensRequest, body);
}

function parseOrThrow<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("invalid_request", "The request body must be a JSON object");
  }
  const result = schema.safeParse(body, { reportInput: true });
  if (result.success) return result.data;
  const { path, message } = describeIssue(result.error.issues[0], []);
  const param = path.join(".");
  throw new ApiError("invalid_request", param ? `${param}: ${message}` : message, param ? { param } : {});
}

type Issue = z.core.$ZodIssue;

/**
 * One readable message for a zod issue. A union's issue ("Invalid input") is replaced by the issue of the branch
 * that got furthest into the value (for `content: "..." | [blocks]` given an array, the blocks branch), so the
 * message names the innermost field that is wrong.
 */
function describeIssue(issue: Issue, base: PropertyKey[]): { path: PropertyKey[]; message: string } {
  const path = [...base, ...issue.path];
  if (issue.code === "invalid_union" && issue.discriminator !== undefined) {
    const allowed = ("options" in issue ? issue.options ?? [] : []).map(String).join(", ");
    const value = discriminatorValue(issue.input, issue.discriminator);
    const given = value === undefined ? "Field required" : `${JSON.stringify(value).slice(0, 100)} is not supported`;
    return { path, message: `${given}; expected one of: ${allowed}` };
  }
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const branches = issue.errors.map((branch) => describeIssue(branch[0], path));
    const deepest = branches.reduce((best, branch) => (branch.path.length > best.path.length ? branch : best));
    if (deepest.path.length > path.length) return deepest;
    return { path, message: `has the wrong type (got ${describeValue(issue.input)})` };
  }
  if (issue.code === "invalid_type" && issue.input === undefined) return { path, message: "Field required" };
  if (issue.code === "invalid_type") {
    return { path, message: `expected ${issue.expected}, got ${describeValue(issue.input)}` };
  }
  if (issue.code === "too_small" && issue.origin === "number" && Number(issue.minimum) === 0 && !issue.inclusive) {
    return { path, message: "must be a positive integer" };
  }
  return { path, message: issue.message };
}

/** `reportInput` gives the whole object that failed; the message wants its discriminator field. */
function discriminatorValue(input: unknown, discriminator: string): unknown {
  if (typeof input !== "object" || input === null) return undefined;
  return Object.entries(input).find(([key]) => key === discriminator)?.[1];
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isInteger(value)) return `non-integer number ${value}`;
  return typeof value;
}
