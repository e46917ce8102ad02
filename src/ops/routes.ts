/**
 * Operations routes, registered by the app in one call: `GET /api/status` (admin key), the dashboard under
 * `/dashboard` (public files; the data behind it needs the admin key), and `GET /metrics` (admin key unless
 * AUXOT_METRICS_PUBLIC=true). Registering them also connects the metrics to the store, so that counters are summed
 * fleet-wide when the store is shared.
 */
import type { IRequest, RouterType } from "itty-router";
import type { KeyRole } from "../auth/keys.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { dashboardResponse } from "./dashboard.ts";
import { METRICS_CONTENT_TYPE, metricsText } from "./metrics-endpoint.ts";
import { statusReport } from "./status.ts";

/** The app's authentication step: resolves to the caller's role or throws a 401/429 ApiError. */
export type Authorize<Call> = (request: IRequest, call: Call, roles: KeyRole[]) => Promise<KeyRole>;

export function registerOps<Call>(
  router: RouterType<IRequest, [Call]>,
  ctx: RouterContext,
  authorize: Authorize<Call>,
): void {
  ctx.metrics.attach(ctx.store, { background: ctx.background });

  router
    .get("/api/status", async (request: IRequest, call: Call) => {
      await authorize(request, call, ["admin"]);
      return new Response(JSON.stringify(await statusReport(ctx)), {
        headers: {
          "content-type": "application/json",
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
        },
      });
    })
    .get("/dashboard", (request: IRequest) => dashboardResponse(request))
    .get("/dashboard/*", (request: IRequest) => dashboardResponse(request))
    .get("/metrics", async (request: IRequest, call: Call) => {
      if (!ctx.config.metricsPublic) await authorize(request, call, ["admin"]);
      return new Response(await metricsText(ctx), {
        headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" },
      });
    });
}
