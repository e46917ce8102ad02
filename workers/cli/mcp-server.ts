/**
 * The caller-tools MCP server: offers a job's tools (the API caller's, not the CLI's) to the Claude Code CLI over
 * MCP's streamable HTTP transport on 127.0.0.1, one unguessable path per job (`/mcp/<token>`).
 *
 * The CLI never runs a caller's tool for real: when the model calls one, the job ends with that call returned to
 * the caller, and the engine stops the CLI. Until then a `tools/call` is simply held open, so the CLI cannot move
 * on to another model call. The one exception is the deferred call of a resumed conversation (see
 * conversation.ts): its `tools/call` is answered at once with the result the caller sent.
 *
 * Only what the CLI uses is implemented: `initialize`, notifications, `ping`, `tools/list`, `tools/call`; plain
 * JSON responses (no SSE stream: GET answers 405, as the transport allows).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { McpToolResult } from "./conversation.ts";

export interface McpTool {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
}

export interface CallerToolRegistration {
  tools: McpTool[];
  /** Answer this one call (by its sanitized name, without the `mcp__api__` prefix) with the caller's result. */
  replay?: { name: string; result: McpToolResult };
}

export interface CallerToolSession {
  /** The URL to put in the CLI's `--mcp-config` (`{"type":"http","url":...}`). */
  readonly url: string;
  /** Forgets the job's tools and answers calls still held open (the CLI is gone or going by then). */
  close(): void;
}

interface Entry extends CallerToolRegistration {
  held: Array<{ response: ServerResponse; id: JsonRpcMessage["id"] }>;
  replayed: boolean;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

interface JsonRpcMessage {
  jsonrpc?: string;
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
}

export class CallerToolServer {
  #server?: Server;
  #listening?: Promise<number>;
  #entries = new Map<string, Entry>();

  async register(registration: CallerToolRegistration): Promise<CallerToolSession> {
    const port = await this.#listen();
    const token = crypto.randomUUID().replaceAll("-", "");
    const entry: Entry = { ...registration, held: [], replayed: false };
    this.#entries.set(token, entry);
    return {
      url: `http://127.0.0.1:${port}/mcp/${token}`,
      close: () => {
        this.#entries.delete(token);
        for (const { response, id } of entry.held.splice(0)) {
          respond(response, 200, {
            jsonrpc: "2.0",
            id: id ?? null,
            error: { code: -32000, message: "The tool call was returned to the API caller." },
          });
        }
      },
    };
  }

  async close(): Promise<void> {
    for (const entry of this.#entries.values()) for (const { response } of entry.held.splice(0)) response.destroy();
    this.#entries.clear();
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#listening = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #listen(): Promise<number> {
    this.#listening ??= new Promise((resolve, reject) => {
      const server = createServer((request, response) => void this.#handle(request, response));
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
      this.#server = server;
    });
    return this.#listening;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const match = /^\/mcp\/([0-9a-f]{32})$/.exec(new URL(request.url ?? "/", "http://localhost").pathname);
    const entry = match ? this.#entries.get(match[1]) : undefined;
    if (!entry) return respond(response, 404, { error: "unknown MCP session" });
    if (request.method === "DELETE") return respond(response, 200, {});
    if (request.method !== "POST") return respond(response, 405, { error: "only POST is supported" });
    let body: unknown;
    try {
      body = JSON.parse(await readBody(request));
    } catch {
      return respond(response, 400, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    }
    const messages = (Array.isArray(body) ? body : [body]) as JsonRpcMessage[];
    const replies: unknown[] = [];
    for (const message of messages) {
      if (message.method === "tools/call" && !this.#replay(entry, message, replies)) {
        // Held until the job ends: the model's call goes back to the API caller instead.
        entry.held.push({ response, id: message.id });
        return;
      }
      const reply = answer(entry, message);
      if (reply) replies.push(reply);
    }
    if (replies.length === 0) {
      response.writeHead(202).end();
      return;
    }
    respond(response, 200, Array.isArray(body) ? replies : replies[0]);
  }

  /** Answers the deferred call of a resumed conversation; false for any other call. */
  #replay(entry: Entry, message: JsonRpcMessage, replies: unknown[]): boolean {
    const name = message.params?.name;
    if (!entry.replay || entry.replayed || name !== entry.replay.name) return false;
    entry.replayed = true;
    replies.push({ jsonrpc: "2.0", id: message.id ?? null, result: entry.replay.result });
    return true;
  }
}

function answer(entry: Entry, message: JsonRpcMessage): unknown {
  if (message.id === undefined || message.id === null) return undefined; // notification or response
  const result = (value: unknown) => ({ jsonrpc: "2.0", id: message.id, result: value });
  switch (message.method) {
    case "initialize": {
      const requested = message.params?.protocolVersion;
      return result({
        protocolVersion: typeof requested === "string" ? requested : "2025-06-18",
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: "auxot-caller-tools", version: "1" },
      });
    }
    case "ping":
      return result({});
    case "tools/list":
      return result({ tools: entry.tools });
    default:
      return {
        jsonrpc: "2.0",
        id: message.id,
        error: { code: -32601, message: `unsupported method ${message.method}` },
      };
  }
}

function respond(response: ServerResponse, status: number, body: unknown): void {
  if (response.writableEnded || response.destroyed) return;
  response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Uint8Array).length;
    if (size > MAX_BODY_BYTES) throw new Error("body too large");
    chunks.push(chunk as Uint8Array);
  }
  return new TextDecoder().decode(concat(chunks));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
