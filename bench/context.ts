/**
 * What every benchmark section gets: the settings, the report to write into, and the paths under test — the
 * mock engine called directly (the baseline), the router with its worker (embedded store; Upstash store under
 * Deno; Upstash store under workerd) and the peer gateway — each knowing how to address a request to it and which
 * processes are its own.
 */
import type { Target } from "./lib/plan.ts";
import type { Report } from "./lib/report.ts";
import type { Settings } from "./settings.ts";
import type { BenchKeys, RedisBridge } from "./stack.ts";

export type PathKey =
  | "direct"
  | "router"
  | "router-baseline"
  | "portkey"
  | "litellm"
  | "router-upstash"
  | "workerd";

export interface Path {
  key: PathKey;
  label: string;
  port: number;
  headers: Record<string, string>;
  /** The gateway's own process (the mock's for the direct path): its CPU and memory are reported. */
  pid: number;
  /** Other processes on this path, reported beside it (the worker, the bridge). */
  others: { label: string; pid: number }[];
  /** For Upstash paths: the bridge whose command count is what Upstash would bill. */
  bridge?: RedisBridge;
  /** The gateway's own output (last lines), to explain errors. */
  logs(): string;
}

export interface BenchContext {
  settings: Settings;
  report: Report;
  keys: BenchKeys;
  paths: Path[];
  /** Progress lines (stderr). */
  log(line: string): void;
}

export const CHAT_PATH = "/v1/chat/completions";

/** A chat request to `path` whose last message tells the mock engine how to answer (see bench/mock-engine.ts). */
export function chatTarget(path: Path, message: string, options: { stream?: boolean; extra?: object } = {}): Target {
  const body = {
    model: "bench",
    messages: [{ role: "user", content: message }],
    ...(options.stream ? { stream: true } : {}),
    ...options.extra,
  };
  return {
    name: path.key,
    host: "127.0.0.1",
    port: path.port,
    request: {
      method: "POST",
      path: CHAT_PATH,
      headers: { "content-type": "application/json", ...path.headers },
      body: JSON.stringify(body),
    },
    pids: [path.pid, ...path.others.map((o) => o.pid)],
  };
}

export function pathByKey(ctx: BenchContext, key: PathKey): Path | undefined {
  return ctx.paths.find((p) => p.key === key);
}

/** "Say hello. tokens=16": the non-streaming request every path gets. */
export const NON_STREAM_MESSAGE = "Say hello. tokens=16";

/** A note with the last lines a path's gateway wrote, for a section that saw errors on it. */
export function logNote(path: Path): string {
  const text = path.logs().trim().slice(-600).replaceAll(/\s*\n\s*/g, " ⏎ ");
  return `${path.label} errors; its last output: ${text ? `\`${text.replaceAll("`", "'")}\`` : "(nothing)"}`;
}
