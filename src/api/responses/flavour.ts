/**
 * The OpenAI Responses API flavour: `POST /v1/responses` (also under `/api/openai` and `/api/openai/v1`), stateless,
 * over the same internal chat request and job events as every other API. Errors, request ids and model listings
 * are OpenAI's (src/api/openai/flavour.ts); parsing is to-chat.ts, rendering render.ts.
 */
import { ApiError } from "../../http/errors.ts";
import type { ChatFlavour, RenderOptions } from "../flavour.ts";
import { openaiApi, openaiToolChoiceError } from "../openai/flavour.ts";
import { ResponseBuilder } from "./render.ts";
import { ResponsesStreamEncoder } from "./stream.ts";
import { type ResponsesEcho, toResponsesChat } from "./to-chat.ts";

/** The echo of each body `toChatRequest` accepted, so rendering does not parse it twice. */
const echoes = new WeakMap<object, ResponsesEcho>();

function echoOf(options: RenderOptions | undefined): ResponsesEcho | undefined {
  return options?.echo as ResponsesEcho | undefined;
}

export const responsesFlavour: ChatFlavour = {
  ...openaiApi,
  name: "responses",
  toChatRequest: (body, headers) => {
    const { request, echo } = toResponsesChat(body, headers);
    if (typeof body === "object" && body !== null) echoes.set(body, echo);
    return request;
  },
  wantsStream: (body) => typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true,
  renderOptions: (body) => ({
    includeUsage: true,
    echo: (typeof body === "object" && body !== null ? echoes.get(body) : undefined) ?? toResponsesChat(body).echo,
  }),
  encoder: (meta, _request, options) => new ResponsesStreamEncoder(meta, echoOf(options)!),
  collect: (events, meta, _request, options) => {
    const builder = new ResponseBuilder(meta, echoOf(options));
    for (const event of events) builder.step(event);
    if (builder.failure) throw new ApiError("api_error", builder.failure.message, { code: builder.failure.code });
    return builder.response();
  },
  toolChoiceError: openaiToolChoiceError,
};

/**
 * `POST /v1/responses/input_tokens`: the request's prompt as the worker renders it, counted (`model` may be left
 * out here; the policy's model counts).
 */
export const responsesInputTokensFlavour: ChatFlavour = {
  ...responsesFlavour,
  mode: "count_tokens",
  toChatRequest: (body, headers) => responsesFlavour.toChatRequest(withModel(body), headers),
  wantsStream: () => false,
  renderOptions: () => ({ includeUsage: true }),
  collect: (events) => {
    const start = events.find((e) => e.type === "start");
    return { object: "response.input_tokens", input_tokens: start?.type === "start" ? start.promptTokens ?? 0 : 0 };
  },
};

function withModel(body: unknown): unknown {
  if (typeof body !== "object" || body === null || "model" in body) return body;
  return { ...body, model: "default" };
}

/**
 * `GET/DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`, `GET /v1/responses/{id}/input_items`: this
 * router keeps no responses, so there is never one to find.
 */
export const storedResponseRoute = {
  flavour: responsesFlavour,
  handle: (): Promise<Response> =>
    Promise.reject(
      new ApiError("not_found", "This router does not store responses (it serves store: false only).", {
        code: "response_not_found",
      }),
    ),
};
