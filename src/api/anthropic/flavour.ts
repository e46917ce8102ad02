/**
 * The Anthropic Messages API flavour: `POST /v1/messages` (also under `/api/anthropic`), its count_tokens
 * companion and the models listing, as configuration plus the pure transforms in this folder. Routing,
 * authentication (`x-api-key` or `Authorization: Bearer`) and the HTTP status of errors are the router's.
 */
import { ApiError } from "../../http/errors.ts";
import { anthropicModelObject, anthropicModelsBody } from "../../policy/models-list.ts";
import type { ChatFlavour } from "../flavour.ts";
import { AnthropicStreamEncoder, collectMessage, errorBody, errorStatus } from "./render.ts";
import { toChatRequest, toCountTokensRequest } from "./to-chat.ts";

export const anthropicFlavour: ChatFlavour = {
  name: "anthropic",
  toChatRequest,
  wantsStream: (body) => typeof body === "object" && body !== null && "stream" in body && body.stream === true,
  // Anthropic always reports usage, so `includeUsage` does not apply.
  renderOptions: () => ({ includeUsage: true }),
  encoder: (meta) => new AnthropicStreamEncoder(meta),
  collect: (events, meta) => collectMessage(events, meta),
  errorBody,
  errorStatus,
  responseHeaders: (requestId) => ({ "request-id": `req_${requestId}`, "x-request-id": requestId }),
  // Claude Code keeps only ids starting with "claude": the list adds a claude-<model> id for each chat model.
  modelsList: (policy, aliases) => anthropicModelsBody(policy, aliases),
  model: (entry) => anthropicModelObject(entry),
  // tool_choice "any" (internally "required") with no tools is accepted, as Anthropic does.
  toolChoiceError: (problem, choice) =>
    problem === "required" || typeof choice !== "object" ? undefined : new ApiError(
      "invalid_request",
      `tool_choice.name: no tool named '${choice.name}' in tools`,
      { param: "tool_choice.name" },
    ),
};

/** count_tokens: the worker renders the prompt and reports its size; the answer is `{input_tokens}`. */
export const anthropicCountTokensFlavour: ChatFlavour = {
  ...anthropicFlavour,
  mode: "count_tokens",
  toChatRequest: toCountTokensRequest,
  wantsStream: () => false,
  collect: (events) => {
    const start = events.find((e) => e.type === "start");
    return anthropicCountTokensBody(start?.type === "start" ? start.promptTokens ?? 0 : 0);
  },
};

/** The HTTP status for an error in Anthropic's convention (529 for overloaded, where ApiError says 503). */
export function anthropicErrorStatus(error: ApiError): number {
  return errorStatus(error);
}

/** Validates a `/v1/messages/count_tokens` body into the ChatRequest whose prompt is to be counted. */
export const anthropicCountTokensRequest = toCountTokensRequest;

/** The `/v1/messages/count_tokens` response body. */
export function anthropicCountTokensBody(inputTokens: number): { input_tokens: number } {
  return { input_tokens: inputTokens };
}

export interface AnthropicModel {
  type: "model";
  id: string;
  display_name: string;
  /** RFC 3339. The Unix epoch: Anthropic documents it for "release date unknown". */
  created_at: string;
}

/** One model object, for `GET /v1/models/{id}`. */
export function anthropicModel(id: string): AnthropicModel {
  return { type: "model", id, display_name: id, created_at: "1970-01-01T00:00:00Z" };
}

/** The `GET /v1/models` body: the policy's model, the only one this router serves. */
export function anthropicModelsList(policyModelName: string): {
  data: AnthropicModel[];
  has_more: false;
  first_id: string;
  last_id: string;
} {
  return {
    data: [anthropicModel(policyModelName)],
    has_more: false,
    first_id: policyModelName,
    last_id: policyModelName,
  };
}
