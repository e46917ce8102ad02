/**
 * The OpenAI flavours: Chat Completions and legacy Completions, plus the `GET /v1/models` body.
 */
import { ApiError } from "../../http/errors.ts";
import { openaiModelObject, openaiModelsBody } from "../../policy/models-list.ts";
import type { ApiFlavour, ChatFlavour } from "../flavour.ts";
import {
  ChatChunkEncoder,
  chatCompletionBody,
  completionBody,
  CompletionChunkEncoder,
  openaiErrorBody,
} from "./render.ts";
import { chatCompletionToChat, completionToChat } from "./to-chat.ts";

const wantsStream = (body: unknown) =>
  typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true;

/** Errors, request ids and model listings as every OpenAI API (Chat Completions, Completions, Responses) has them. */
export const openaiApi: Omit<ApiFlavour, "name"> & { name: "openai" } = {
  name: "openai",
  errorBody: openaiErrorBody,
  errorStatus: (error) => error.status,
  responseHeaders: (requestId) => ({ "x-request-id": requestId }),
  modelsList: openaiModelsBody,
  model: openaiModelObject,
};

/** OpenAI's wording for a tool_choice that cannot be satisfied (Chat Completions and Responses alike). */
export function openaiToolChoiceError(problem: "unknown" | "required", choice: unknown): ApiError {
  if (problem === "required") {
    return new ApiError("invalid_request", "tool_choice 'required' needs at least one tool in 'tools'.", {
      param: "tool_choice",
    });
  }
  const name = (choice as { name?: string }).name;
  return new ApiError("invalid_request", `tool_choice names '${name}', which is not in 'tools'.`, {
    param: "tool_choice",
  });
}

export const openaiChatFlavour: ChatFlavour = {
  ...openaiApi,
  toChatRequest: chatCompletionToChat,
  wantsStream,
  renderOptions: (body) => ({ includeUsage: includeUsage(body) }),
  encoder: (meta, _request, { includeUsage }) => new ChatChunkEncoder(meta, includeUsage),
  collect: (events, meta) => chatCompletionBody(events, meta),
  toolChoiceError: openaiToolChoiceError,
};

export const openaiCompletionsFlavour: ChatFlavour = {
  ...openaiChatFlavour,
  toChatRequest: completionToChat,
  encoder: (meta, _request, { includeUsage }) => new CompletionChunkEncoder(meta, includeUsage),
  collect: (events, meta) => completionBody(events, meta),
};

/** `stream_options.include_usage`, read from the raw body (it is not part of the internal request). */
export function includeUsage(body: unknown): boolean {
  const options = (body as { stream_options?: { include_usage?: unknown } } | null)?.stream_options;
  return options?.include_usage === true;
}

export function openaiModelsList(models: { id: string; created: number }[]) {
  return { object: "list", data: models.map((m) => openaiModel(m.id, m.created)) };
}

export function openaiModel(id: string, created: number) {
  return { id, object: "model", created, owned_by: "auxot" };
}
