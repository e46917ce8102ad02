/**
 * The router's MCP endpoint (Streamable HTTP transport, authenticated with the API key), so MCP clients can use
 * the server's tools: `initialize`, `ping`, `tools/list`, `tools/call`. Stateless on purpose — no session id, no
 * server-initiated stream (GET answers 405, which the transport allows) — because instances and Workers
 * isolates share nothing but the store; every POST is answered with plain JSON. Small enough to implement
 * directly on JSON-RPC rather than bundle an SDK into the router (which must also run on Workers).
 */
import { z } from "zod";
import { json } from "../http/responses.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { ApiError } from "../http/errors.ts";
import { serverTool, serverTools } from "./catalog.ts";
import { runServerTool } from "./run.ts";

export const MCP_PROTOCOL_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const SERVER_INFO = { name: "auxot-router", version: "0.1.0" };

const JsonRpcMessage = z.looseObject({
  jsonrpc: z.literal("2.0"),
  id: z.union([z.string(), z.number(), z.null()]).optional(),
  method: z.string().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
});
type JsonRpcMessage = z.infer<typeof JsonRpcMessage>;

const CallParams = z.looseObject({
  name: z.string(),
  arguments: z.record(z.string(), z.unknown()).optional(),
});

/** JSON-RPC error codes (the MCP spec uses the standard ones). */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Handles a request already authenticated. `body` is the parsed JSON of a POST. */
export async function handleMcp(ctx: RouterContext, request: Request, body: () => Promise<unknown>): Promise<Response> {
  if (request.method !== "POST") {
    return new Response(null, { status: 405, headers: { allow: "POST" } });
  }
  const version = request.headers.get("mcp-protocol-version");
  if (version && !MCP_PROTOCOL_VERSIONS.includes(version)) {
    return rpcErrorResponse(null, INVALID_REQUEST, `Unsupported MCP-Protocol-Version: ${version}`, 400);
  }
  let raw: unknown;
  try {
    raw = await body();
  } catch (err) {
    if (err instanceof ApiError && err.status === 413) throw err;
    return rpcErrorResponse(null, PARSE_ERROR, err instanceof ApiError ? err.message : "Parse error", 400);
  }
  const batch = Array.isArray(raw);
  const messages = batch ? raw as unknown[] : [raw];
  const replies: unknown[] = [];
  for (const item of messages) {
    const parsed = JsonRpcMessage.safeParse(item);
    if (!parsed.success) {
      replies.push(rpcError(null, INVALID_REQUEST, "Invalid JSON-RPC message"));
      continue;
    }
    const message = parsed.data;
    // Notifications (no id) and responses from the client need no answer.
    if (message.method === undefined || message.id === undefined) continue;
    try {
      replies.push({ jsonrpc: "2.0", id: message.id, result: await dispatch(ctx, message, request.signal) });
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      replies.push(rpcError(message.id, err.code, err.message));
    }
  }
  if (replies.length === 0) return new Response(null, { status: 202 });
  return json(batch ? replies : replies[0]);
}

async function dispatch(ctx: RouterContext, message: JsonRpcMessage, signal: AbortSignal): Promise<unknown> {
  switch (message.method) {
    case "initialize": {
      const requested = message.params?.protocolVersion;
      const protocolVersion = typeof requested === "string" && MCP_PROTOCOL_VERSIONS.includes(requested)
        ? requested
        : MCP_PROTOCOL_VERSIONS[0];
      return {
        protocolVersion,
        capabilities: { tools: { listChanged: false } },
        serverInfo: SERVER_INFO,
        instructions: "Server-side tools run by this Auxot router's tools workers.",
      };
    }
    case "ping":
      return {};
    case "tools/list":
      return {
        tools: (await serverTools(ctx)).map((t) => ({
          name: t.name,
          ...(t.description ? { description: t.description } : {}),
          inputSchema: { ...t.parameters, type: "object" },
        })),
      };
    case "tools/call": {
      const params = CallParams.safeParse(message.params ?? {});
      if (!params.success) throw new RpcError(INVALID_PARAMS, "tools/call needs a tool name and object arguments");
      const { name } = params.data;
      if (!await serverTool(ctx, name)) throw new RpcError(INVALID_PARAMS, `Unknown tool: ${name}`);
      const outcome = await runServerTool(ctx, { name, arguments: params.data.arguments ?? {} }, signal);
      if (outcome.ok) return { content: [{ type: "text", text: outcome.content }], isError: false };
      // Tool and infrastructure failures alike are results the client's model can read (MCP's convention).
      return { content: [{ type: "text", text: outcome.message }], isError: true };
    }
    default:
      throw new RpcError(METHOD_NOT_FOUND, `Method not found: ${message.method}`);
  }
}

function rpcError(id: JsonRpcMessage["id"], code: number, message: string) {
  return { jsonrpc: "2.0", id: id ?? null, error: { code, message } };
}

function rpcErrorResponse(id: JsonRpcMessage["id"], code: number, message: string, status: number): Response {
  return json(rpcError(id, code, message), {}, status);
}
