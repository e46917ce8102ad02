/**
 * MCP servers configured on the tools worker, their tools offered to the router under namespaced names
 * (`mcp__<server>__<tool>`) with their real input schemas. Servers are reached over stdio (a subprocess the
 * worker starts) or Streamable HTTP, with the official MCP SDK client. A server that fails or disconnects is
 * retried in the background with backoff; its tools disappear from the worker's offer meanwhile, and tool-list
 * change notifications refresh the offer.
 *
 * Configuration: a JSON file (--mcp-config / AUXOT_MCP_CONFIG) in the `mcpServers` shape other MCP clients use:
 *
 *   { "mcpServers": {
 *       "files":  { "command": "npx", "args": ["-y", "some-mcp-server"], "env": { "TOKEN": "${FILES_TOKEN}" } },
 *       "remote": { "url": "https://mcp.example.com/mcp", "headers": { "authorization": "Bearer ${REMOTE_TOKEN}" } } } }
 *
 * `${NAME}` in `env`, `headers`, `args` and `url` is replaced from the worker's environment, so secrets stay out
 * of the file. Server names: letters, digits, `_` and `-` (no `__`).
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// The SDK's wildcard exports give types only to extension-less paths and code only to `.js` ones.
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { z } from "zod";
import type { ToolDefinition } from "../../src/protocol/chat.ts";
import type { Logger } from "../../src/log.ts";
import { errorMessage, type ServerTool, ToolError } from "./tool.ts";

const StdioServer = z.object({
  type: z.literal("stdio").optional(),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
}).strict();

const HttpServer = z.object({
  type: z.enum(["http", "streamable-http"]).optional(),
  url: z.url(),
  headers: z.record(z.string(), z.string()).default({}),
}).strict();

export const McpConfig = z.object({
  mcpServers: z.record(
    z.string().regex(/^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*$/, "server names use letters, digits, - and single _"),
    z.union([StdioServer, HttpServer]),
  ),
}).strict();
export type McpConfig = z.infer<typeof McpConfig>;
type ServerConfig = McpConfig["mcpServers"][string];

/** Parses a config file's text, expanding `${NAME}` from `env`. Throws an Error naming the problem. */
export function parseMcpConfig(text: string, env: Record<string, string | undefined>): McpConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`the MCP config is not valid JSON: ${errorMessage(err)}`);
  }
  const parsed = McpConfig.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`the MCP config is invalid at ${issue.path.join(".") || "top level"}: ${issue.message}`);
  }
  const expand = (value: string) =>
    value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) throw new Error(`the MCP config refers to \${${name}}, which is not set`);
      return v;
    });
  const expandAll = (record: Record<string, string>) =>
    Object.fromEntries(Object.entries(record).map(([k, v]) => [k, expand(v)]));
  for (const server of Object.values(parsed.data.mcpServers)) {
    if ("command" in server) {
      server.args = server.args.map(expand);
      server.env = expandAll(server.env);
    } else {
      server.url = expand(server.url);
      server.headers = expandAll(server.headers);
    }
  }
  return parsed.data;
}

export interface McpHubOptions {
  log: Logger;
  /** A call's time limit unless the router's deadline is sooner. */
  callTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Called when the set of tools changes (a server connected, disconnected or changed its list). */
  onChange?: () => void;
}

/** Namespaced tool names fit the 64-character limit of the common APIs and the router's lane names. */
export function namespacedName(server: string, tool: string): string {
  return `mcp__${server}__${tool.replace(/[^A-Za-z0-9_-]/g, "_")}`.slice(0, 64);
}

interface RemoteTool {
  exposed: string;
  original: string;
  definition: ToolDefinition;
}

class McpConnection {
  #client?: Client;
  #tools: RemoteTool[] = [];
  #retryMs = 1_000;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor(readonly name: string, readonly config: ServerConfig, readonly opts: McpHubOptions) {}

  get tools(): RemoteTool[] {
    return this.#client ? this.#tools : [];
  }

  async connect(): Promise<void> {
    const log = this.opts.log.child({ mcpServer: this.name });
    const client = new Client({ name: "auxot-tools-worker", version: "1.0.0" }, {
      listChanged: {
        tools: {
          onChanged: (error, tools) => {
            if (error || !tools) return log.warn("refreshing MCP tools failed", { error });
            this.#tools = this.#describe(tools);
            this.opts.onChange?.();
          },
        },
      },
    });
    const transport = this.#transport(log);
    try {
      await client.connect(transport, { timeout: this.opts.connectTimeoutMs ?? 20_000 });
      const tools = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor ? { cursor } : {});
        tools.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor);
      this.#tools = this.#describe(tools);
    } catch (err) {
      await client.close().catch(() => {});
      log.warn("MCP server unavailable; retrying", { error: errorMessage(err), retryInMs: this.#retryMs });
      this.#retryLater();
      return;
    }
    this.#retryMs = 1_000;
    this.#client = client;
    client.onclose = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.opts.onChange?.();
      if (!this.#closed) {
        log.warn("MCP server disconnected; reconnecting", { retryInMs: this.#retryMs });
        this.#retryLater();
      }
    };
    log.info("MCP server connected", { tools: this.#tools.map((t) => t.exposed) });
    this.opts.onChange?.();
  }

  #transport(log: Logger): Transport {
    if ("command" in this.config) {
      const transport = new StdioClientTransport({
        command: this.config.command,
        args: this.config.args,
        env: this.config.env,
        cwd: this.config.cwd,
        stderr: "pipe",
      });
      transport.stderr?.on("data", (chunk: Uint8Array) => {
        log.debug("MCP server stderr", { text: new TextDecoder().decode(chunk).trimEnd() });
      });
      return transport;
    }
    return new StreamableHTTPClientTransport(new URL(this.config.url), {
      requestInit: { headers: this.config.headers },
    });
  }

  #describe(tools: { name: string; description?: string; inputSchema: Record<string, unknown> }[]): RemoteTool[] {
    const seen = new Set<string>();
    const out: RemoteTool[] = [];
    for (const tool of tools) {
      const exposed = namespacedName(this.name, tool.name);
      if (seen.has(exposed)) {
        this.opts.log.warn("MCP tool name clashes after namespacing; skipped", { server: this.name, tool: tool.name });
        continue;
      }
      seen.add(exposed);
      out.push({
        exposed,
        original: tool.name,
        definition: {
          name: exposed,
          ...(tool.description ? { description: tool.description } : {}),
          parameters: tool.inputSchema,
        },
      });
    }
    return out;
  }

  #retryLater(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.connect(), this.#retryMs);
    this.#retryMs = Math.min(60_000, this.#retryMs * 2);
  }

  async call(original: string, args: Record<string, unknown>, signal: AbortSignal): Promise<string> {
    const client = this.#client;
    if (!client) throw new ToolError(`the MCP server "${this.name}" is not connected`);
    let result;
    try {
      result = await client.callTool({ name: original, arguments: args }, undefined, {
        signal,
        timeout: this.opts.callTimeoutMs ?? 120_000,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new ToolError(`the MCP server "${this.name}" failed: ${errorMessage(err)}`);
    }
    const text = contentText(result);
    if (result.isError) throw new ToolError(text || `the MCP tool ${original} reported an error`);
    return text;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    await client?.close().catch(() => {});
  }
}

/** A tool result's content as text: text parts as they are, other parts described. */
function contentText(result: Record<string, unknown>): string {
  const content = Array.isArray(result.content) ? result.content as Record<string, unknown>[] : [];
  const parts = content.map((part) => {
    switch (part.type) {
      case "text":
        return String(part.text ?? "");
      case "image":
      case "audio":
        return `[${part.type}: ${String(part.mimeType ?? "unknown type")}]`;
      case "resource": {
        const resource = (part.resource ?? {}) as Record<string, unknown>;
        return typeof resource.text === "string" ? resource.text : `[resource: ${String(resource.uri ?? "")}]`;
      }
      case "resource_link":
        return `[resource: ${String(part.uri ?? "")}]`;
      default:
        return "";
    }
  }).filter(Boolean);
  if (parts.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return parts.join("\n");
}

export class McpHub {
  readonly #connections: McpConnection[];

  private constructor(connections: McpConnection[]) {
    this.#connections = connections;
  }

  /** Connects to every server (in parallel); servers that fail are retried in the background. */
  static async start(config: McpConfig, options: McpHubOptions): Promise<McpHub> {
    const connections = Object.entries(config.mcpServers).map(([name, server]) =>
      new McpConnection(name, server, options)
    );
    await Promise.all(connections.map((c) => c.connect()));
    return new McpHub(connections);
  }

  /** The tools of the servers connected now. */
  tools(): ServerTool[] {
    return this.#connections.flatMap((connection) =>
      connection.tools.map((tool) => ({
        definition: tool.definition,
        run: (args, ctx) => connection.call(tool.original, args, ctx.signal),
      }))
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.#connections.map((c) => c.close()));
  }
}
