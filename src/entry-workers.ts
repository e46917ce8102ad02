/**
 * Cloudflare Workers entry: env bindings are the configuration (validated once per isolate), the store is Upstash
 * (isolates share nothing, so the embedded store is refused), hash-wasm gets its WASM precompiled by the platform,
 * and background work (sweeps, metric flushes) is handed to the current request's `waitUntil`. The optional cron
 * trigger (wrangler.toml `[triggers] crons`) sweeps lost leases even when no traffic arrives.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { type App, createApp } from "./app.ts";
import { ConfigError, type Env, loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { installPrecompiledWasm } from "./platform/hash-wasm-workers.ts";
import { hashWasmModules } from "./platform/wasm/hash-wasm-modules.js";
import { createStore } from "./store/create.ts";

installPrecompiledWasm(hashWasmModules);

interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

const requestContext = new AsyncLocalStorage<WaitUntil>();
let app: App | undefined;
let startupError: string | undefined;

function appFor(env: Env): App | undefined {
  if (app || startupError) return app;
  try {
    const config = loadConfig(env);
    if (!config.redis) {
      throw new ConfigError([
        "AUXOT_REDIS_URL is not set: on Cloudflare Workers every request may run in a different isolate, so the " +
        "router needs the Upstash store (an Upstash REST URL, with AUXOT_REDIS_TOKEN).",
      ]);
    }
    const log = createLogger(config.logLevel);
    app = createApp({
      config,
      // No request ever settles a promise another request awaits: workerd runs such a continuation in the right
      // request only at low concurrency, and under load (32+ requests at once) it starts answering every request
      // with "Cannot perform I/O on behalf of a different request" or "code had hung" (docs/store.md, "Who owns a
      // wait"). Every wait is its own blocking command or timer.
      store: createStore(config, {}, { wakeups: "off", subscribe: true }),
      crossRequestWakeups: false,
      log,
      background: (work) => {
        const ctx = requestContext.getStore();
        if (ctx) ctx.waitUntil(work);
        else void work.catch((err) => log.warn("background work failed", { error: err }));
      },
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    startupError = err.message;
    console.error(`auxot-router: ${err.message}`);
  }
  return app;
}

export default {
  fetch(request: Request, env: Env, ctx: WaitUntil): Promise<Response> | Response {
    const router = appFor(env);
    if (!router) {
      // Configuration errors are the operator's to fix: say which variable, never echo values.
      return Response.json({ error: { type: "server_error", message: startupError } }, { status: 500 });
    }
    const client = request.headers.get("cf-connecting-ip") ?? "unknown";
    return requestContext.run(ctx, () => router.fetch(request, { client }));
  },
  scheduled(_event: unknown, env: Env, ctx: WaitUntil): void {
    const router = appFor(env);
    if (router) ctx.waitUntil(router.ctx.store.reap());
  },
};
