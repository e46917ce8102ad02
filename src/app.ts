/**
 * The router as a platform-neutral fetch handler (itty-router). Runtime entries (src/entry-deno.ts,
 * src/entry-workers.ts) build the configuration and the store and call `createApp`; nothing here touches a
 * runtime global. The caller-facing APIs are one route table: each route names its API flavour (src/api/), a single
 * `before` stage puts that flavour on the request and authenticates, and the flavour parses, renders, and shapes
 * errors and headers. Handlers return Responses or throw ApiError; one `catch` renders errors in the request's
 * flavour (worker routes keep the worker protocol's shape).
 */
import { type IRequest, Router, type RouterType } from "itty-router";
import { anthropicCountTokensFlavour, anthropicFlavour } from "./api/anthropic/flavour.ts";
import type { ApiFlavour, ChatFlavour } from "./api/flavour.ts";
import { callerFlavour } from "./api/caller-flavour.ts";
import { embeddingsHandler } from "./api/embeddings/embeddings.ts";
import { openaiApi, openaiChatFlavour, openaiCompletionsFlavour } from "./api/openai/flavour.ts";
import { responsesFlavour, responsesInputTokensFlavour, storedResponseRoute } from "./api/responses/flavour.ts";
import type { KeyRole } from "./auth/keys.ts";
import { KeyVerifier } from "./auth/verifier.ts";
import { clientAddress } from "./auth/client-address.ts";
import type { RouterConfig } from "./config.ts";
import { type ChatDispatch, dispatchChat } from "./dispatch/chat.ts";
import { json } from "./http/responses.ts";
import { createReaper, type RouterContext } from "./dispatch/context.ts";
import { conversationKeyOf } from "./dispatch/conversation.ts";
import { handleEvents, handlePoll, workerErrorResponse, WorkerProtocolError } from "./dispatch/worker-routes.ts";
import { fleetHealth } from "./dispatch/health.ts";
import { WORKER_BOUNDS } from "./dispatch/worker-bounds.ts";
import { ApiError, toApiError } from "./http/errors.ts";
import { readJsonBody } from "./http/body.ts";
import type { Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { registerOps } from "./ops/routes.ts";
import { chooseAnswerSource } from "./tools/loop.ts";
import { registerToolRoutes } from "./tools/routes.ts";
import { type JobStore, StoreError } from "./store/store.ts";
import { describeModelId } from "./policy/models-list.ts";

export interface AppDeps {
  config: RouterConfig;
  store: JobStore;
  log: Logger;
  now?: () => number;
  /** Keeps background work alive after the response (Workers' ctx.waitUntil). */
  background?: (work: Promise<unknown>) => void;
  /**
   * Whether one request may end another's wait by settling the promise it awaits (default true). False under
   * workerd, which breaks under concurrency when it does (docs/store.md, "Who owns a wait"); the store given must
   * then have its in-process wake-ups off too.
   */
  crossRequestWakeups?: boolean;
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

/** A request once the `before` stage has picked its API flavour (and authenticated it). */
type ApiRequest = IRequest & { flavour: ApiFlavour };

/**
 * One API route: where it is served, which flavour answers it (a value, or read from the request where two APIs
 * share a path), and its handler. Every route runs the same `before` stage: pick the flavour, authenticate.
 */
interface ApiRoute {
  method: "get" | "post" | "all";
  paths: string[];
  flavour: ApiFlavour | ((request: IRequest) => ApiFlavour);
  handle: (request: ApiRequest, call: CallInfo) => Promise<Response>;
}

/** Base URLs callers configure for each API (`/v1/...` is shared: OpenAI by default, Anthropic by its header). */
const OPENAI = ["/v1", "/api/openai", "/api/openai/v1"];
const ANTHROPIC = ["/v1", "/api/anthropic/v1"];
const under = (prefixes: string[], path: string) => prefixes.map((prefix) => prefix + path);

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
    auth: new KeyVerifier({
      hashes: deps.config.keyHashes,
      store: deps.store,
      now,
      onArgon2: () => metrics.argon2.inc(),
      crossRequestWakeups: deps.crossRequestWakeups,
    }),
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
      const client = clientAddress(request.headers, call.client, deps.config.trustedProxy);
      return await ctx.auth.authenticate(KeyVerifier.presentedKey(request), roles, client);
    } catch (err) {
      if (err instanceof ApiError) {
        metrics.authFailures.inc({ reason: err.kind === "rate_limit" ? "throttled" : "rejected" });
      }
      throw err;
    }
  };
  const body = (request: IRequest) => readJsonBody(request, deps.config.maxBodyBytes);

  /** The one request pipeline of every chat API: the flavour parses, the dispatcher runs, the flavour renders. */
  const chat = (flavour: ChatFlavour): ApiRoute["handle"] => async (request) => {
    const raw = await body(request);
    const chatRequest = flavour.toChatRequest(raw, request.headers);
    chatRequest.conversationKey ??= conversationKeyOf(chatRequest, request.headers);
    const dispatch: ChatDispatch = {
      flavour,
      request: chatRequest,
      stream: flavour.wantsStream(raw),
      render: flavour.renderOptions(raw),
      mode: flavour.mode ?? "generate",
      signal: request.signal,
    };
    // One job, or the server-tool loop when server tools are offered to this request.
    return await dispatchChat(ctx, { ...dispatch, source: await chooseAnswerSource(ctx, dispatch) });
  };
  const chatRoute = (prefixes: string[], path: string, flavour: ChatFlavour): ApiRoute => ({
    method: "post",
    paths: under(prefixes, path),
    flavour,
    handle: chat(flavour),
  });
  // Model lists come from the configuration alone: no store round trip (Claude Code allows 3 s for them).
  const models: ApiRoute["handle"] = (request) =>
    Promise.resolve(json(request.flavour.modelsList(deps.config.policy, deps.config.aliases, STARTED)));
  // Every name maps to a model of the policy (its own, an alias's, or the default), so any id describes one.
  const model: ApiRoute["handle"] = (request) => {
    const entry = describeModelId(deps.config.policy, deps.config.aliases, decodeURIComponent(request.params.id));
    return Promise.resolve(json(request.flavour.model(entry, STARTED)));
  };

  /** The route table of the caller-facing APIs. Adding an endpoint is one line here. */
  const apiRoutes: ApiRoute[] = [
    chatRoute(OPENAI, "/chat/completions", openaiChatFlavour),
    chatRoute(OPENAI, "/completions", openaiCompletionsFlavour),
    chatRoute(OPENAI, "/responses", responsesFlavour),
    chatRoute(OPENAI, "/responses/input_tokens", responsesInputTokensFlavour),
    { ...storedResponseRoute, paths: under(OPENAI, "/responses/:id+"), method: "all" },
    chatRoute(ANTHROPIC, "/messages", anthropicFlavour),
    chatRoute(ANTHROPIC, "/messages/count_tokens", anthropicCountTokensFlavour),
    {
      method: "post",
      paths: under(OPENAI, "/embeddings"),
      flavour: openaiApi,
      handle: embeddingsHandler(ctx, body),
    },
    { method: "get", paths: under(OPENAI, "/models"), flavour: callerFlavour, handle: models },
    { method: "get", paths: under(OPENAI, "/models/:id+"), flavour: callerFlavour, handle: model },
    { method: "get", paths: under(["/api/anthropic/v1"], "/models"), flavour: anthropicFlavour, handle: models },
    { method: "get", paths: under(["/api/anthropic/v1"], "/models/:id+"), flavour: anthropicFlavour, handle: model },
  ];

  /** The `before` stage of every API route: the request carries its flavour from here to its last byte. */
  const before = (route: ApiRoute) => async (request: IRequest, call: CallInfo) => {
    request.flavour = typeof route.flavour === "function" ? route.flavour(request) : route.flavour;
    await authorize(request, call, ["api"]);
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
      const flavour: ApiFlavour = request.flavour ?? callerFlavour(request);
      const headers = flavour.responseHeaders(crypto.randomUUID().replaceAll("-", ""));
      if (apiError.options.retryAfterSeconds) headers["retry-after"] = String(apiError.options.retryAfterSeconds);
      if (apiError.options.allow) headers["allow"] = apiError.options.allow.join(", ");
      return json(flavour.errorBody(apiError), headers, flavour.errorStatus(apiError));
    },
    finally: [(response: Response, request: IRequest) => {
      // The path only when it is needed (a URL parse per request otherwise): routes outside the APIs, debug logs.
      const path = request.flavour && deps.log.level !== "debug" ? "" : new URL(request.url).pathname;
      metrics.requests.inc({ api: request.flavour?.name ?? apiOf(path), status: String(response.status) });
      if (deps.log.level === "debug") {
        deps.log.debug("request", { method: request.method, path, status: response.status });
      }
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
      worker(async (request, role) =>
        await handleEvents(
          ctx,
          request.params.id,
          await readJsonBody(request, Math.min(deps.config.maxBodyBytes, WORKER_BOUNDS.maxEventsPostBytes)),
          role,
        )
      ),
    )
    .all("/worker/*", worker(() => Promise.reject(new ApiError("not_found", "Unknown worker endpoint."))));

  for (const route of apiRoutes) {
    for (const path of route.paths) router[route.method](path, before(route), route.handle);
  }
  registerOps(router, ctx, authorize);
  registerToolRoutes(router, ctx, authorize, body);
  const routeMethods = apiRoutes.flatMap((route) =>
    route.method === "all" ? [] : route.paths.map((path) => ({ pattern: pathPattern(path), method: route.method }))
  );
  router.all("*", (request: IRequest) => {
    const path = new URL(request.url).pathname;
    // A known endpoint asked with another method: 405 with the methods it answers (OpenAI's status and wording).
    const allow = [...new Set(routeMethods.filter((r) => r.pattern.test(path)).map((r) => r.method.toUpperCase()))];
    if (allow.length > 0) {
      throw new ApiError("invalid_request", `Invalid method for URL (${request.method} ${path})`, {
        status: 405,
        allow,
      });
    }
    const known =
      /\/(images|audio|files|batches|fine_tuning|moderations|assistants|threads|vector_stores|uploads)(\/|$)/
        .test(path);
    if (known) throw new ApiError("not_implemented", `${request.method} ${path} is not implemented by this router.`);
    throw new ApiError("not_found", `Unknown route: ${request.method} ${path}`);
  });

  return {
    ctx,
    fetch: async (request: Request, call: CallInfo = { client: "unknown" }) => await router.fetch(request, call),
  };
}

/** The metrics label of a request outside the API routes. */
function apiOf(path: string): string {
  if (path.startsWith("/worker/")) return "worker";
  if (path.includes("/tools") || path.endsWith("/mcp")) return "tools";
  return "other";
}

/** A store outage (Redis unreachable) is a 503 with retry-after: the request may well succeed in a moment. */
function storeUnavailable(err: unknown): ApiError | undefined {
  if (!(err instanceof StoreError) || err.code !== "unavailable") return undefined;
  return new ApiError("overloaded", "The router's job store is unreachable; retry shortly.", { retryAfterSeconds: 2 });
}

/** An itty-router path (`/v1/models/:id+`) as a regular expression over whole paths. */
function pathPattern(path: string): RegExp {
  const source = path.split("/").map((segment) =>
    segment.startsWith(":") ? (segment.endsWith("+") ? ".+" : "[^/]+") : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  ).join("/");
  return new RegExp(`^${source}/?$`);
}
