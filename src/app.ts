/**
 * The router as a platform-neutral fetch handler (itty-router). Runtime entries (src/entry-deno.ts,
 * src/entry-workers.ts) build the configuration and the store and call `createApp`; nothing here touches a
 * runtime global. Handlers return Responses or throw ApiError; one `catch` renders errors in the caller's API
 * flavour (OpenAI, Anthropic, or the worker protocol's shape).
 */
import { type IRequest, Router, type RouterType } from "itty-router";
import {
  anthropicCountTokensBody,
  anthropicCountTokensRequest,
  anthropicErrorStatus,
  anthropicFlavour,
  anthropicModel,
  anthropicModelsList,
} from "./api/anthropic/flavour.ts";
import type { ChatFlavour } from "./api/flavour.ts";
import {
  includeUsage,
  openaiChatFlavour,
  openaiCompletionsFlavour,
  openaiModel,
  openaiModelsList,
} from "./api/openai/flavour.ts";
import { openaiErrorBody } from "./api/openai/render.ts";
import type { KeyRole } from "./auth/keys.ts";
import { KeyVerifier } from "./auth/verifier.ts";
import type { RouterConfig } from "./config.ts";
import { dispatchChat, json } from "./dispatch/chat.ts";
import { createReaper, type RouterContext } from "./dispatch/context.ts";
import { conversationKeyOf } from "./dispatch/conversation.ts";
import { handleEvents, handlePoll, workerErrorResponse, WorkerProtocolError } from "./dispatch/worker-routes.ts";
import { fleetHealth } from "./dispatch/health.ts";
import { ApiError, toApiError } from "./http/errors.ts";
import { readJsonBody } from "./http/body.ts";
import type { Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { registerOps } from "./ops/routes.ts";
import { serverToolLoop } from "./tools/loop.ts";
import { registerToolRoutes } from "./tools/routes.ts";
import { type JobStore, StoreError } from "./store/store.ts";

export interface AppDeps {
  config: RouterConfig;
  store: JobStore;
  log: Logger;
  now?: () => number;
  /** Keeps background work alive after the response (Workers' ctx.waitUntil). */
  background?: (work: Promise<unknown>) => void;
}

/** Per-request facts from the runtime: the client's address (for throttling wrong keys). */
export interface CallInfo {
  client: string;
}

export interface App {
  fetch(request: Request, call?: CallInfo): Promise<Response>;
  ctx: RouterContext;
}

const STARTED = Math.floor(Date.now() / 1000);

/** count_tokens: the worker renders the prompt and reports its size; the answer is `{input_tokens}`. */
const countTokensFlavour: ChatFlavour = {
  ...anthropicFlavour,
  wantsStream: () => false,
  collect: (events) => {
    const start = events.find((e) => e.type === "start");
    return anthropicCountTokensBody(start?.type === "start" ? start.promptTokens ?? 0 : 0);
  },
};

export function createApp(deps: AppDeps): App {
  const now = deps.now ?? (() => Date.now());
  const background = deps.background ?? ((work: Promise<unknown>) => void work.catch(() => {}));
  const metrics = new Metrics();
  const ctx: RouterContext = {
    config: deps.config,
    store: deps.store,
    log: deps.log,
    now,
    metrics,
    background,
    auth: new KeyVerifier({ hashes: deps.config.keyHashes, store: deps.store, now }),
    // Sweeping is free in memory; on a shared store each sweep is a billed command, and leases last 30 s.
    reapSoon: createReaper(
      deps.store,
      deps.log,
      metrics,
      now,
      background,
      deps.store.kind === "embedded" ? 1_000 : 10_000,
    ),
  };

  const authorize = async (request: IRequest, call: CallInfo, roles: KeyRole[]) => {
    try {
      return await ctx.auth.authenticate(KeyVerifier.presentedKey(request), roles, () => call.client);
    } catch (err) {
      if (err instanceof ApiError) {
        metrics.authFailures.inc({ reason: err.kind === "rate_limit" ? "throttled" : "rejected" });
      }
      throw err;
    }
  };
  const body = (request: IRequest) => readJsonBody(request, deps.config.maxBodyBytes);

  const chat =
    (flavour: ChatFlavour, mode: "generate" | "count_tokens" = "generate") =>
    async (request: IRequest, call: CallInfo) => {
      await authorize(request, call, ["api"]);
      const raw = await body(request);
      const chatRequest = mode === "count_tokens" ? anthropicCountTokensRequest(raw) : flavour.toChatRequest(raw);
      chatRequest.conversationKey ??= conversationKeyOf(chatRequest, request.headers);
      return await dispatchChat(ctx, {
        flavour,
        request: chatRequest,
        stream: mode === "generate" && flavour.wantsStream(raw),
        includeUsage: includeUsage(raw),
        mode,
        signal: request.signal,
        source: serverToolLoop,
      });
    };

  const models = async (request: IRequest, call: CallInfo) => {
    await authorize(request, call, ["api"]);
    const name = deps.config.policy.model.name;
    if (isAnthropic(request)) return json(anthropicModelsList(name));
    return json(openaiModelsList([{ id: name, created: STARTED }]));
  };
  const model = async (request: IRequest, call: CallInfo) => {
    await authorize(request, call, ["api"]);
    const id = decodeURIComponent(request.params.id);
    // Every name maps to the policy's model (callers send what their tool uses), so any id describes it.
    if (isAnthropic(request)) return json(anthropicModel(id));
    return json(openaiModel(id, STARTED));
  };

  const worker =
    (handler: (request: IRequest, role: KeyRole) => Promise<Response>) => async (request: IRequest, call: CallInfo) => {
      try {
        const role = await authorize(request, call, ["admin", "tools"]);
        return await handler(request, role);
      } catch (err) {
        // A worker's own mistake (a 400 it is told about) is not the router's error: it must not flood the log.
        if (!(err instanceof ApiError) && !(err instanceof WorkerProtocolError)) {
          deps.log.error("worker request failed", { path: new URL(request.url).pathname, error: err });
        }
        return workerErrorResponse(storeUnavailable(err) ?? err);
      }
    };

  const router: RouterType<IRequest, [CallInfo]> = Router({
    catch: (err: unknown, request: IRequest) => {
      const unavailable = storeUnavailable(err);
      const apiError = unavailable ?? toApiError(err);
      if (unavailable) deps.log.warn("store unavailable", { path: new URL(request.url).pathname, error: err });
      else if (!(err instanceof ApiError)) {
        deps.log.error("request failed", { path: new URL(request.url).pathname, error: err });
      }
      const anthropic = isAnthropic(request);
      const headers: Record<string, string> = {};
      if (apiError.options.retryAfterSeconds) headers["retry-after"] = String(apiError.options.retryAfterSeconds);
      if (anthropic) headers["request-id"] = `req_${crypto.randomUUID().replaceAll("-", "")}`;
      const status = anthropic ? anthropicErrorStatus(apiError) : apiError.status;
      return json(anthropic ? anthropicFlavour.errorBody(apiError) : openaiErrorBody(apiError), headers, status);
    },
    finally: [(response: Response, request: IRequest) => {
      const path = new URL(request.url).pathname;
      metrics.requests.inc({ api: apiOf(path), status: String(response.status) });
      deps.log.debug("request", { method: request.method, path, status: response.status });
      return response;
    }],
  });

  router
    .head("*", () => new Response(null, { status: 200 }))
    .get("/", () => json({ name: "auxot-router", docs: "https://github.com/auxot/auxot#readme" }))
    .get("/health", async () => {
      const health = await fleetHealth(ctx);
      return json(health, {}, health.status === "error" ? 503 : 200);
    })
    .post(
      "/worker/v1/poll",
      worker(async (request, role) => await handlePoll(ctx, await body(request), role, request.signal)),
    )
    .post(
      "/worker/v1/jobs/:id/events",
      worker(async (request) => await handleEvents(ctx, request.params.id, await body(request))),
    )
    .all("/worker/*", worker(() => Promise.reject(new ApiError("not_found", "Unknown worker endpoint."))));

  for (const prefix of ["/v1", "/api/openai", "/api/openai/v1"]) {
    router.post(`${prefix}/chat/completions`, chat(openaiChatFlavour));
    router.post(`${prefix}/completions`, chat(openaiCompletionsFlavour));
    router.get(`${prefix}/models`, models);
    router.get(`${prefix}/models/:id+`, model);
  }
  for (const prefix of ["/v1", "/api/anthropic/v1"]) {
    router.post(`${prefix}/messages`, chat(anthropicFlavour));
    router.post(`${prefix}/messages/count_tokens`, chat(countTokensFlavour, "count_tokens"));
  }
  router.get("/api/anthropic/v1/models", models);
  router.get("/api/anthropic/v1/models/:id+", model);
  registerOps(router, ctx, authorize);
  registerToolRoutes(router, ctx, authorize, body);
  router.all("*", (request: IRequest) => {
    const path = new URL(request.url).pathname;
    const known =
      /\/(embeddings|images|audio|files|batches|fine_tuning|moderations|assistants|threads|vector_stores|responses|uploads)(\/|$)/
        .test(path);
    if (known) throw new ApiError("not_implemented", `${request.method} ${path} is not implemented by this router.`);
    throw new ApiError("not_found", `Unknown route: ${request.method} ${path}`);
  });

  return {
    ctx,
    fetch: async (request: Request, call: CallInfo = { client: "unknown" }) => await router.fetch(request, call),
  };
}

/** Anthropic paths, or the shared /v1 paths when the caller speaks Anthropic (its SDK sends anthropic-version). */
function isAnthropic(request: Request): boolean {
  const path = new URL(request.url).pathname;
  if (path.startsWith("/api/anthropic/") || path.startsWith("/v1/messages")) return true;
  if (path.startsWith("/api/openai/")) return false;
  return request.headers.has("anthropic-version");
}

function apiOf(path: string): string {
  if (path.startsWith("/worker/")) return "worker";
  if (path.startsWith("/api/anthropic/") || path.startsWith("/v1/messages")) return "anthropic";
  if (path.includes("/chat/completions") || path.includes("/completions") || path.includes("/models")) return "openai";
  if (path.includes("/tools")) return "tools";
  return "other";
}

/** A store outage (Redis unreachable) is a 503 with retry-after: the request may well succeed in a moment. */
function storeUnavailable(err: unknown): ApiError | undefined {
  if (!(err instanceof StoreError) || err.code !== "unavailable") return undefined;
  return new ApiError("overloaded", "The router's job store is unreachable; retry shortly.", { retryAfterSeconds: 2 });
}
