/**
 * The OpenAI flavours: Chat Completions and legacy Completions, plus the `GET /v1/models` body.
 */
import type { ChatFlavour } from "../flavour.ts";
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

export const openaiChatFlavour: ChatFlavour = {
  name: "openai",
  toChatRequest: chatCompletionToChat,
  wantsStream,
  encoder: (meta, _request, { includeUsage }) => new ChatChunkEncoder(meta, includeUsage),
  collect: (events, meta) => chatCompletionBody(events, meta),
  errorBody: openaiErrorBody,
};

export const openaiCompletionsFlavour: ChatFlavour = {
  name: "openai",
  toChatRequest: completionToChat,
  wantsStream,
  encoder: (meta, _request, { includeUsage }) => new CompletionChunkEncoder(meta, includeUsage),
  collect: (events, meta) => completionBody(events, meta),
  errorBody: openaiErrorBody,
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
