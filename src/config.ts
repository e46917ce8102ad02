/**
 * Router configuration from a flat map of variables (the process environment merged with `.env` on Deno, or the
 * Worker's bindings). Names and defaults follow docs/router-configuration (AUXOT_*). Every problem is collected
 * and reported at start-up naming the variable; nothing falls back silently.
 */
import { type Argon2Phc, type KeyRole, parsePhc } from "./auth/keys.ts";
import { parseTrustedProxy, type TrustedProxy } from "./auth/client-address.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import type { Policy } from "./protocol/worker-protocol.ts";
import { DEFAULT_MODEL, findModel, RegistryError, resolvePolicyModel } from "./registry/registry.ts";
import { parseRedisUrl, type UpstashConnection } from "./store/upstash/config.ts";
import { checkDistinct, type ModelAlias, parseAliases, parseModelList } from "./policy/models.ts";

export type Env = Record<string, string | undefined>;

export interface RouterConfig {
  keyHashes: Partial<Record<KeyRole, Argon2Phc>>;
  policy: Policy;
  /** AUXOT_MODEL_ALIASES: client model names (patterns) → a model of the policy; first match wins. */
  aliases: ModelAlias[];
  /** Upstash REST connection (URL and token), or undefined for the embedded store. */
  redis?: UpstashConnection;
  allowedTools: string[];
  /** Per-tool credentials: lower-case tool name → credential name → value. */
  toolCredentials: Record<string, Record<string, string>>;
  port: number;
  host: string;
  jobTimeoutMs: number;
  queueTimeoutMs: number;
  leaseMs: number;
  /** A running job whose worker posts nothing (no token, no progress) this long is lost: it is continued elsewhere. */
  workerSilenceMs: number;
  /** How many times one answer may be continued on another worker after its worker was lost. */
  maxContinuations: number;
  /** Longest a worker's poll is held open (below the idle timeout of any proxy in front of the router). */
  pollWaitMs: number;
  maxBodyBytes: number;
  logLevel: LogLevel;
  /** Allows /metrics without the admin key (for a scraper on a private network). */
  metricsPublic: boolean;
  /** Which proxy's client-address header to believe for per-client throttling (AUXOT_TRUSTED_PROXY). */
  trustedProxy: TrustedProxy;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export const DEFAULTS = {
  AUXOT_MODEL: DEFAULT_MODEL,
  AUXOT_CTX_SIZE: "131072",
  AUXOT_MAX_PARALLEL: "2",
  AUXOT_PORT: "8080",
  AUXOT_HOST: "0.0.0.0",
  AUXOT_JOB_TIMEOUT: "5m",
  AUXOT_QUEUE_TIMEOUT: "2m",
  AUXOT_LEASE_TIMEOUT: "30s",
  AUXOT_POLL_WAIT: "50s",
  AUXOT_WORKER_SILENCE: "5s",
  AUXOT_MAX_CONTINUATIONS: "2",
  AUXOT_MAX_BODY_BYTES: String(16 * 1024 * 1024),
  AUXOT_LOG_LEVEL: "info",
  AUXOT_ENGINE: "llama",
} as const;

// Greedy: the tool name runs to the LAST "__", so AUXOT_TOOLS_MCP__GITHUB__TOKEN is credential TOKEN of tool
// "mcp__github", never credential GITHUB__TOKEN of a tool named "mcp". Credential names have no "__".
const TOOL_CREDENTIAL = /^AUXOT_TOOLS_([A-Z0-9_]+)__([A-Z0-9]+(?:_[A-Z0-9]+)*)$/;

export function loadConfig(env: Env): RouterConfig {
  const problems: string[] = [];
  const get = (name: keyof typeof DEFAULTS | string): string => {
    const value = env[name]?.trim();
    return value ? value : (DEFAULTS as Record<string, string>)[name] ?? "";
  };

  const keyHashes: Partial<Record<KeyRole, Argon2Phc>> = {};
  const hashVars: [KeyRole, string, boolean][] = [
    ["admin", "AUXOT_ADMIN_KEY_HASH", true],
    ["api", "AUXOT_API_KEY_HASH", true],
    ["tools", "AUXOT_TOOLS_KEY_HASH", false],
  ];
  for (const [role, name, required] of hashVars) {
    const value = get(name);
    if (!value) {
      if (required) problems.push(`${name} is not set: run \`deno task setup\` to create keys and their hashes.`);
      continue;
    }
    const phc = parsePhc(value);
    if (!phc) {
      problems.push(`${name} is not an Argon2id hash ($argon2id$v=19$m=…,t=…,p=…$salt$hash): run \`deno task setup\`.`);
    } else keyHashes[role] = phc;
  }

  const int = (name: string, min: number, max: number): number => {
    const raw = get(name);
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}.`);
      return min;
    }
    return value;
  };
  const duration = (name: string): number => {
    const raw = get(name);
    const ms = parseDuration(raw);
    if (ms === undefined || ms <= 0) {
      problems.push(`${name}=${JSON.stringify(raw)} is not a duration: write e.g. "90s", "5m" or "1h30m".`);
      return 1;
    }
    return ms;
  };

  const ctxSize = int("AUXOT_CTX_SIZE", 256, 16_777_216);
  const maxParallel = int("AUXOT_MAX_PARALLEL", 1, 256);
  const port = int("AUXOT_PORT", 0, 65_535);
  const jobTimeoutMs = duration("AUXOT_JOB_TIMEOUT");
  const queueTimeoutMs = duration("AUXOT_QUEUE_TIMEOUT");
  const leaseMs = duration("AUXOT_LEASE_TIMEOUT");
  const pollWaitMs = duration("AUXOT_POLL_WAIT");
  // Workers post at least once a second while running a job, so under 2 s would mistake a slow post for a death.
  const workerSilenceMs = duration("AUXOT_WORKER_SILENCE");
  if (workerSilenceMs > 1 && workerSilenceMs < 2_000) {
    problems.push(`AUXOT_WORKER_SILENCE must be at least 2s (workers post every 1s).`);
  }
  const maxContinuations = int("AUXOT_MAX_CONTINUATIONS", 0, 10);
  if (pollWaitMs > 60_000) problems.push(`AUXOT_POLL_WAIT must be at most 60s (workers ask for at most that).`);
  const maxBodyBytes = int("AUXOT_MAX_BODY_BYTES", 1_024, 1_073_741_824);

  const logLevel = get("AUXOT_LOG_LEVEL").toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`AUXOT_LOG_LEVEL=${JSON.stringify(get("AUXOT_LOG_LEVEL"))} must be one of ${LOG_LEVELS.join(", ")}.`);
  }

  const engine = get("AUXOT_ENGINE");
  if (engine !== "llama" && engine !== "cli") {
    problems.push(`AUXOT_ENGINE=${JSON.stringify(engine)} must be "llama" (GPU workers) or "cli" (CLI workers).`);
  }

  let model: Policy["model"] = { name: get("AUXOT_MODEL") };
  if (engine === "llama") {
    try {
      model = resolvePolicyModel(get("AUXOT_MODEL"), get("AUXOT_QUANTIZATION") || undefined);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      const name = err.code === "unknown_model" ? "AUXOT_MODEL" : "AUXOT_QUANTIZATION";
      problems.push(`${name}: ${err.message}`);
    }
  }

  // More models (src/policy/models.ts): the default one above keeps its own variables unchanged.
  const extraChat = parseModelList("AUXOT_MODELS", get("AUXOT_MODELS"), { ctxSize, maxParallel }, problems);
  const embeddingModels = parseModelList("AUXOT_EMBEDDING_MODELS", get("AUXOT_EMBEDDING_MODELS"), {
    ctxSize,
    maxParallel,
  }, problems);
  if (engine === "cli" && extraChat.length + embeddingModels.length > 0) {
    problems.push("AUXOT_MODELS and AUXOT_EMBEDDING_MODELS need GPU workers (AUXOT_ENGINE=llama).");
  }
  const models: NonNullable<Policy["models"]> = [
    { ...model, kind: "chat", ctxSize, maxParallel, capabilities: findCapabilities(model.name) },
    ...extraChat,
    ...embeddingModels,
  ];
  checkDistinct(models, problems);
  const aliases = parseAliases(get("AUXOT_MODEL_ALIASES"), models, problems);

  const host = get("AUXOT_HOST");
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) problems.push(`AUXOT_HOST=${JSON.stringify(host)} is not a bind address.`);

  const allowedTools = get("AUXOT_ALLOWED_TOOLS").split(",").map((t) => t.trim()).filter(Boolean);
  for (const tool of allowedTools) {
    if (!/^[a-z0-9_.-]+$/i.test(tool)) problems.push(`AUXOT_ALLOWED_TOOLS: "${tool}" is not a tool name.`);
  }
  const toolCredentials: Record<string, Record<string, string>> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("AUXOT_TOOLS_") || name === "AUXOT_TOOLS_KEY_HASH" || value === undefined) continue;
    const match = TOOL_CREDENTIAL.exec(name);
    if (!match) {
      problems.push(`${name}: tool credentials are named AUXOT_TOOLS_{TOOL}__{NAME} (two underscores before NAME).`);
      continue;
    }
    (toolCredentials[match[1].toLowerCase()] ??= {})[match[2]] = value;
  }

  const trustedProxy = parseTrustedProxy(get("AUXOT_TRUSTED_PROXY"), problems);
  const metricsPublic = get("AUXOT_METRICS_PUBLIC");
  if (metricsPublic && metricsPublic !== "true" && metricsPublic !== "false") {
    problems.push(`AUXOT_METRICS_PUBLIC=${JSON.stringify(metricsPublic)} must be "true" or "false".`);
  }

  let redis: UpstashConnection | undefined;
  try {
    redis = parseRedisUrl(env.AUXOT_REDIS_URL, env) ?? undefined;
  } catch (err) {
    problems.push((err as Error).message);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const cliTools = get("AUXOT_CLI_TOOLS").split(",").map((t) => t.trim()).filter(Boolean);
  const policyFields = {
    engine: engine as Policy["engine"],
    model,
    ctxSize,
    maxParallel,
    ...(engine === "cli" ? { cliTools } : {}),
    models,
  };
  return {
    keyHashes,
    policy: { version: policyVersion(policyFields), ...policyFields },
    aliases,
    ...(redis ? { redis } : {}),
    allowedTools,
    toolCredentials,
    port,
    host,
    jobTimeoutMs,
    queueTimeoutMs,
    leaseMs,
    workerSilenceMs,
    maxContinuations,
    pollWaitMs,
    maxBodyBytes,
    logLevel,
    metricsPublic: metricsPublic === "true",
    trustedProxy,
  };
}

function findCapabilities(name: string): string[] {
  return findModel(name)?.capabilities ?? ["chat"];
}

/** A short, stable fingerprint of the policy: workers reload when it changes. */
function policyVersion(fields: Omit<Policy, "version">): string {
  const text = JSON.stringify(fields);
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    h1 = Math.imul(h1 ^ text.charCodeAt(i), 0x01000193);
    h2 = Math.imul(h2 ^ text.charCodeAt(i), 0x5bd1e995);
  }
  return ((h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0")).slice(0, 12);
}

/** A summary without secrets, for logs at start-up and the status API. */
export function describeConfig(config: RouterConfig): Record<string, unknown> {
  return {
    engine: config.policy.engine,
    model: config.policy.model.name,
    quantization: config.policy.model.quantization ?? "auto",
    ctxSize: config.policy.ctxSize,
    maxParallel: config.policy.maxParallel,
    policyVersion: config.policy.version,
    models: (config.policy.models ?? []).map((m) => `${m.name} (${m.kind})`),
    aliases: config.aliases.map((a) => `${a.pattern}=${a.target}`),
    store: config.redis ? `upstash (${new URL(config.redis.url).host})` : "embedded",
    toolsEnabled: config.keyHashes.tools !== undefined,
    allowedTools: config.allowedTools.length > 0 ? config.allowedTools : "all",
    toolCredentials: Object.fromEntries(Object.entries(config.toolCredentials).map(([t, c]) => [t, Object.keys(c)])),
    jobTimeout: formatDuration(config.jobTimeoutMs),
    queueTimeout: formatDuration(config.queueTimeoutMs),
    logLevel: config.logLevel,
  };
}
