/**
 * Direct use of the server-side tools, with the API key (rtr_):
 *
 *   GET  /v1/tools                 (also /api/tools/v1/tools)          the tools available now
 *   POST /v1/tools/execute         (also /api/tools/v1/tools/execute)  run one: {name, arguments}
 *   POST /mcp                      (also /api/tools/v1/mcp)            MCP endpoint (Streamable HTTP)
 *
 * `execute` answers 200 with `{name, content, is_error}` when the tool ran, failing or not (a tool's own error
 * is a result, as it would be for a model); 404 for a tool that is not available (no tools worker offers it,
 * or AUXOT_ALLOWED_TOOLS leaves it out); 502/503/504 when the call could not be run (worker lost, no worker
 * took it in time, deadline passed).
 */
import type { IRequest, RouterType } from "itty-router";
import { z } from "zod";
import type { KeyRole } from "../auth/keys.ts";
import { json } from "../http/responses.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { ApiError } from "../http/errors.ts";
import { serverTool, serverTools } from "./catalog.ts";
import { handleMcp } from "./mcp-endpoint.ts";
import { runServerTool, type ToolOutcome } from "./run.ts";

/** The app's authentication step: resolves to the caller's role or throws a 401/429 ApiError. */
export type Authorize<Call> = (request: IRequest, call: Call, roles: KeyRole[]) => Promise<KeyRole>;

const ExecuteBody = z.object({
  name: z.string().min(1).max(200),
  arguments: z.record(z.string(), z.unknown()).default({}),
});

export function registerToolRoutes<Call>(
  router: RouterType<IRequest, [Call]>,
  ctx: RouterContext,
  authorize: Authorize<Call>,
  readBody: (request: IRequest) => Promise<unknown>,
): void {
  const list = async (request: IRequest, call: Call) => {
    await authorize(request, call, ["api"]);
    const tools = await serverTools(ctx);
    return json({
      object: "list",
      data: tools.map((t) => ({ name: t.name, description: t.description ?? "", parameters: t.parameters })),
    });
  };

  const execute = async (request: IRequest, call: Call) => {
    await authorize(request, call, ["api"]);
    const parsed = ExecuteBody.safeParse(await readBody(request));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ApiError("invalid_request", `${issue.path.join(".") || "body"}: ${issue.message}`, {
        param: issue.path.join(".") || undefined,
      });
    }
    const { name, arguments: args } = parsed.data;
    if (!await serverTool(ctx, name)) {
      const available = (await serverTools(ctx)).map((t) => t.name);
      throw new ApiError(
        "not_found",
        `No server tool named '${name}' is available${
          available.length ? ` (available: ${available.join(", ")})` : " (no tools worker is connected)"
        }.`,
      );
    }
    const outcome = await runServerTool(ctx, { name, arguments: args }, request.signal);
    if (outcome.ok) return json({ name, content: outcome.content, is_error: false });
    if (outcome.code === "tool_error") return json({ name, content: outcome.message, is_error: true });
    throw infrastructureError(outcome);
  };

  const mcp = async (request: IRequest, call: Call) => {
    await authorize(request, call, ["api"]);
    return await handleMcp(ctx, request, () => readBody(request));
  };

  for (const prefix of ["/v1", "/api/tools/v1"]) {
    router.get(`${prefix}/tools`, list);
    router.post(`${prefix}/tools/execute`, execute);
  }
  for (const path of ["/mcp", "/api/tools/v1/mcp"]) router.all(path, mcp);
}

function infrastructureError(outcome: Extract<ToolOutcome, { ok: false }>): ApiError {
  switch (outcome.code) {
    case "queue_full":
      return new ApiError("overloaded", outcome.message, { retryAfterSeconds: 5 });
    case "queue_timeout":
      return new ApiError("overloaded", outcome.message, { retryAfterSeconds: 10 });
    case "timeout":
      return new ApiError("timeout", outcome.message);
    default:
      return new ApiError("api_error", outcome.message, { status: 502, code: outcome.code });
  }
}
