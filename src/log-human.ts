/**
 * Log records as short lines for a person at a terminal ("12:04:31 model Qwen3-8B Q4_K_M: 2 slots × 8192 tokens"),
 * the alternative to one JSON object per line (src/log.ts). The JSON form is what machines read (log shippers,
 * tests); this one is chosen only on a terminal, or with AUXOT_LOG_FORMAT=human. Messages that people meet in the
 * first hour (start, backend, model, download, each job, retries) get their own wording; the rest print the
 * message and their fields as key=value.
 */
import type { LogFields, LogLevel } from "./log.ts";

export type LogFormat = "json" | "human";

/** AUXOT_LOG_FORMAT=json|human wins; otherwise human on a terminal, JSON when piped or collected. */
export function logFormatFrom(env: Record<string, string | undefined>, isTerminal: boolean): LogFormat {
  const wanted = env.AUXOT_LOG_FORMAT?.trim().toLowerCase();
  if (wanted === "json" || wanted === "human") return wanted;
  return isTerminal ? "human" : "json";
}

/** Fields that only make sense to a machine (ids repeated on every line, the worker kind of the process). */
const QUIET = new Set(["worker", "id"]);

function seconds(ms: unknown): string {
  const s = Number(ms) / 1000;
  if (!Number.isFinite(s)) return "?";
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  return s < 10 ? `${Math.round(s * 10) / 10}s` : s < 120 ? `${Math.round(s)}s` : `${Math.round(s / 60)}m`;
}

function gb(bytes: unknown): string {
  const n = Number(bytes);
  return Number.isFinite(n) ? `${(n / 1e9).toFixed(1)} GB` : "?";
}

/** An error's message with its causes ("fetch failed: connect ECONNREFUSED 127.0.0.1:8080"). */
function errorText(error: unknown): string {
  const parts: string[] = [];
  let current = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    const e = current as { message?: unknown; code?: unknown; cause?: unknown };
    const text = typeof e.message === "string" ? e.message : typeof current === "object" ? "" : String(current);
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
    if (typeof e.code === "string" && !parts.some((p) => p.includes(e.code as string))) parts.push(e.code);
    current = typeof current === "object" ? e.cause : undefined;
  }
  return parts.join(": ") || String(error);
}

function value(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

function keyValues(fields: LogFields, skip: readonly string[] = []): string {
  return Object.entries(fields)
    .filter(([k, v]) => v !== undefined && !QUIET.has(k) && !skip.includes(k))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(" ");
}

/** Human wording for the messages a new user reads; undefined falls back to "msg key=value …". */
function phrase(msg: string, f: LogFields): string | undefined {
  switch (msg) {
    case "router listening":
      return `router listening on ${f.url} · model ${f.model} (${f.quantization}) · ${f.maxParallel} slots × ` +
        `${f.ctxSize} tokens · store ${f.store}`;
    case "worker starting":
      return `worker ${f.name ?? ""} connecting to ${f.router} (engine ${f.engine})`.replace("  ", " ");
    case "llama backend":
      return `backend ${f.backend}${f.gpu ? ` · ${f.gpu}` : ""}${f.note ? ` (${f.note})` : ""}${
        f.vramFreeBytes !== undefined ? ` · ${gb(f.vramFreeBytes)} free of ${gb(f.vramTotalBytes)}` : ""
      }`;
    case "applying model policy":
      return `loading model ${f.model}…`;
    case "model policy applied":
      return `model ${f.model}${f.quantization ? ` ${f.quantization}` : ""}: ${f.slots ?? f.parallel ?? "?"} slots × ` +
        `${f.ctxSize ?? "?"} tokens${f.note ? ` (${f.note})` : ""}`;
    case "download":
      return `download ${f.progress}`;
    case "job done": {
      const rate = typeof f.tokensPerSecond === "number" ? `${f.tokensPerSecond.toFixed(1)} tok/s` : "";
      const cached = f.cachedTokens ? ` (${f.cachedTokens} cached)` : "";
      return `job ${String(f.job).slice(0, 8)} ${f.outcome}: ${f.promptTokens ?? "?"} in${cached} → ` +
        `${f.completionTokens ?? "?"} out in ${seconds(f.ms)}${rate ? `, ${rate}` : ""}`;
    }
    case "cannot reach the router, retrying":
      return `cannot reach the router${f.router ? ` at ${f.router}` : ""}: ${errorText(f.error)} — retrying in ` +
        `${seconds(f.retryInMs)} (attempt ${f.attempt})`;
    case "could not apply the model policy; retrying":
      return `could not load the model: ${errorText(f.error)} — retrying in ${seconds(f.retryInMs)}`;
  }
  return undefined;
}

const LEVEL_MARK: Record<LogLevel, string> = { debug: "debug ", info: "", warn: "WARNING ", error: "ERROR " };

/** One human line for a record (time, level mark for warn/error, wording or message plus key=value). */
export function formatHumanLine(level: LogLevel, msg: string, fields: LogFields, now = new Date()): string {
  const time = now.toTimeString().slice(0, 8);
  const text = phrase(msg, fields) ?? [msg, keyValues(fields)].filter(Boolean).join(" · ");
  return `${time} ${LEVEL_MARK[level]}${text}`;
}
