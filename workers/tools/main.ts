/**
 * The tools worker: `deno task worker:tools --tools-key-file FILE --router-url https://router.example`.
 * Offers the built-in tools (web_search, web_fetch, code_executor) and the tools of configured MCP servers to
 * the router, and runs the tool jobs the router hands it (the shared poll loop; tools follow no model policy).
 * The router accepts it only when AUXOT_TOOLS_KEY_HASH is set there. Ctrl-C finishes running calls and exits.
 */
import { hostname } from "node:os";
import { parseDuration } from "../../src/duration.ts";
import { createLogger, logFormatFrom, type Logger, type LogLevel } from "../../src/log.ts";
import { WorkerLoop } from "../common/worker-loop.ts";
import {
  ArgsError,
  connectionArgs,
  logLevelFrom,
  parseFlags,
  runUntilStopped,
  workerMain,
} from "../common/worker-main.ts";
import { prepareCodeExecutor } from "./code-executor.ts";
import { McpHub, parseMcpConfig } from "./mcp.ts";
import { AllowList } from "./net-guard.ts";
import type { ServerTool } from "./tool.ts";
import { ToolsEngine } from "./tools-engine.ts";
import { webFetchTool } from "./web-fetch.ts";
import { webSearchTool } from "./web-search.ts";

export const WORKER_VERSION = "0.1.0";
export const BUILTIN_TOOLS = ["web_search", "web_fetch", "code_executor"] as const;
type BuiltinTool = typeof BUILTIN_TOOLS[number];

const USAGE = `Usage: deno task worker:tools --tools-key-file FILE --router-url https://router.example [options]

  --tools-key-file FILE    file holding the tools key (or AUXOT_TOOLS_KEY_FILE; mode 600), or set AUXOT_TOOLS_KEY
  --tools-key KEY          (avoid: a flag is visible to every user in ps) tools key from \`deno task setup\` (or AUXOT_TOOLS_KEY)
  --router-url URL         the router's base URL (or AUXOT_ROUTER_URL)
  --builtins LIST          built-in tools to offer: ${BUILTIN_TOOLS.join(",")} (default all; "none" for none)
                           (or AUXOT_TOOLS_BUILTINS)
  --mcp-config FILE        MCP servers whose tools to offer, as mcp__<server>__<tool> (or AUXOT_MCP_CONFIG):
                           {"mcpServers": {"name": {"command": "...", "args": [...], "env": {...}}
                                           | {"url": "https://...", "headers": {...}}}}
  --slots N                tool calls run at once (or AUXOT_TOOLS_SLOTS; default 4)
  --fetch-allow LIST       non-public hosts web_fetch may reach: host, *.domain, IP or CIDR, each with an
                           optional :port (or AUXOT_WEB_FETCH_ALLOW; default none)
  --web-search-url URL     Brave-compatible search endpoint (or AUXOT_WEB_SEARCH_URL)
  --code-timeout DURATION  code_executor time limit, wall and CPU (or AUXOT_CODE_TIMEOUT; default 10s)
  --code-memory-mb N       code_executor heap limit (or AUXOT_CODE_MEMORY_MB; default 128)
  --code-max-output BYTES  code_executor output limit (or AUXOT_CODE_MAX_OUTPUT; default 65536)
  --code-allow-net LIST    hosts code may reach (or AUXOT_CODE_ALLOW_NET; default none)
  --code-allow-read LIST   paths code may read (or AUXOT_CODE_ALLOW_READ; default none)
  --name NAME              how the router shows this worker (default: the host name)

Credentials (e.g. the Brave key) are set on the router, not here: AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY=...`;

const TOOLS_CONNECTION = {
  keyFlag: "--tools-key",
  keyVariable: "AUXOT_TOOLS_KEY",
  keyPrefix: "tls_",
  keyName: "tools key",
  keyHint: "`deno task setup` creates one, and the router must have its hash in AUXOT_TOOLS_KEY_HASH.",
  usage: USAGE,
} as const;

export interface ToolsWorkerArgs {
  key: string;
  routerUrl: string;
  builtins: BuiltinTool[];
  mcpConfig?: string;
  slots: number;
  fetchAllow: AllowList;
  webSearchUrl?: string;
  codeTimeoutMs: number;
  codeMemoryMb: number;
  codeMaxOutput: number;
  codeAllowNet: string[];
  codeAllowRead: string[];
  name: string;
  logLevel: LogLevel;
}

export function parseToolsWorkerArgs(argv: string[], env: Record<string, string | undefined>): ToolsWorkerArgs {
  const values = parseFlags(argv, {
    "tools-key": { type: "string" },
    "tools-key-file": { type: "string" },
    "router-url": { type: "string" },
    builtins: { type: "string" },
    "mcp-config": { type: "string" },
    slots: { type: "string" },
    "fetch-allow": { type: "string" },
    "web-search-url": { type: "string" },
    "code-timeout": { type: "string" },
    "code-memory-mb": { type: "string" },
    "code-max-output": { type: "string" },
    "code-allow-net": { type: "string" },
    "code-allow-read": { type: "string" },
    name: { type: "string" },
  }, USAGE);
  const pick = (flag: keyof typeof values, variable: string): string | undefined => {
    const value = values[flag] ?? env[variable];
    return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
  };
  const { routerUrl, key } = connectionArgs(TOOLS_CONNECTION, {
    routerUrl: pick("router-url", "AUXOT_ROUTER_URL"),
    key: pick("tools-key", "AUXOT_TOOLS_KEY"),
    keyFile: pick("tools-key-file", "AUXOT_TOOLS_KEY_FILE"),
  }, env);

  const list = (raw: string | undefined) => (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const builtinsRaw = pick("builtins", "AUXOT_TOOLS_BUILTINS");
  const builtins = builtinsRaw === undefined ? [...BUILTIN_TOOLS] : builtinsRaw === "none" ? [] : list(builtinsRaw);
  for (const name of builtins) {
    if (!(BUILTIN_TOOLS as readonly string[]).includes(name)) {
      throw new ArgsError(`--builtins: unknown tool "${name}" (known: ${BUILTIN_TOOLS.join(", ")}, or "none").`);
    }
  }
  const int = (flag: keyof typeof values, variable: string, min: number, fallback: number): number => {
    const raw = pick(flag, variable);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min) {
      throw new ArgsError(`--${flag} (${variable}) must be a whole number >= ${min}, got "${raw}".`);
    }
    return Number(raw);
  };
  const timeoutRaw = pick("code-timeout", "AUXOT_CODE_TIMEOUT") ?? "10s";
  const codeTimeoutMs = parseDuration(timeoutRaw);
  if (codeTimeoutMs === undefined || codeTimeoutMs < 100) {
    throw new ArgsError(`--code-timeout (AUXOT_CODE_TIMEOUT) must be a duration like "10s", got "${timeoutRaw}".`);
  }
  let fetchAllow: AllowList;
  try {
    fetchAllow = AllowList.parse(pick("fetch-allow", "AUXOT_WEB_FETCH_ALLOW"));
  } catch (err) {
    throw new ArgsError(`--fetch-allow (AUXOT_WEB_FETCH_ALLOW): ${(err as Error).message}`);
  }
  const webSearchUrl = pick("web-search-url", "AUXOT_WEB_SEARCH_URL");
  if (webSearchUrl && !/^https?:\/\/[^\s]+$/.test(webSearchUrl)) {
    throw new ArgsError(`--web-search-url must be an http(s) URL, got "${webSearchUrl}".`);
  }
  const logLevel = logLevelFrom(env);
  return {
    key,
    routerUrl,
    builtins: builtins as BuiltinTool[],
    mcpConfig: pick("mcp-config", "AUXOT_MCP_CONFIG"),
    slots: int("slots", "AUXOT_TOOLS_SLOTS", 1, 4),
    fetchAllow,
    webSearchUrl,
    codeTimeoutMs,
    codeMemoryMb: int("code-memory-mb", "AUXOT_CODE_MEMORY_MB", 16, 128),
    codeMaxOutput: int("code-max-output", "AUXOT_CODE_MAX_OUTPUT", 1, 64 * 1024),
    codeAllowNet: list(pick("code-allow-net", "AUXOT_CODE_ALLOW_NET")),
    codeAllowRead: list(pick("code-allow-read", "AUXOT_CODE_ALLOW_READ")),
    name: pick("name", "AUXOT_WORKER_NAME") ?? hostname(),
    logLevel,
  };
}

async function builtinTools(args: ToolsWorkerArgs, workDir: string): Promise<ServerTool[]> {
  const tools: ServerTool[] = [];
  for (const name of args.builtins) {
    if (name === "web_search") tools.push(webSearchTool({ endpoint: args.webSearchUrl }));
    if (name === "web_fetch") tools.push(webFetchTool({ allow: args.fetchAllow }));
    if (name === "code_executor") {
      tools.push(
        await prepareCodeExecutor({
          denoPath: Deno.execPath(),
          workDir,
          timeoutMs: args.codeTimeoutMs,
          memoryMb: args.codeMemoryMb,
          maxOutputBytes: args.codeMaxOutput,
          allowNet: args.codeAllowNet,
          allowRead: args.codeAllowRead,
          prlimitPath: await findOnPath("prlimit"),
        }),
      );
    }
  }
  return tools;
}

async function findOnPath(command: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    try {
      if ((await Deno.stat(`${dir}/${command}`)).isFile) return `${dir}/${command}`;
    } catch { /* not here */ }
  }
  return undefined;
}

async function startMcp(args: ToolsWorkerArgs, log: Logger): Promise<McpHub | undefined> {
  if (!args.mcpConfig) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(args.mcpConfig);
  } catch (err) {
    throw new ArgsError(`--mcp-config: cannot read ${args.mcpConfig}: ${(err as Error).message}`);
  }
  let config;
  try {
    config = parseMcpConfig(text, Deno.env.toObject());
  } catch (err) {
    throw new ArgsError(`--mcp-config ${args.mcpConfig}: ${(err as Error).message}`);
  }
  return await McpHub.start(config, { log });
}

export async function runToolsWorker(args: ToolsWorkerArgs): Promise<number> {
  const log = createLogger(
    args.logLevel,
    (line) => console.error(line),
    { worker: "tools" },
    logFormatFrom(
      Deno.env.toObject(),
      Deno.stderr.isTerminal(),
    ),
  );
  const workDir = await Deno.makeTempDir({ prefix: "auxot-tools-" });
  let mcp: McpHub | undefined;
  try {
    const builtins = await builtinTools(args, workDir);
    mcp = await startMcp(args, log);
    const engine = new ToolsEngine({ builtins, sources: mcp ? [mcp] : [], slots: args.slots, log });
    const loop = new WorkerLoop({
      routerUrl: args.routerUrl,
      key: args.key,
      engine,
      log,
      name: args.name,
      version: WORKER_VERSION,
    });
    log.info("tools worker starting", { id: loop.id, router: args.routerUrl, tools: [...engine.tools().keys()] });
    return await runUntilStopped(loop, engine, log, "tool calls");
  } finally {
    await mcp?.close();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await workerMain(parseToolsWorkerArgs, runToolsWorker);
