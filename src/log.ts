/**
 * Structured logging: one JSON object per line, filtered by AUXOT_LOG_LEVEL — or, for a person at a terminal,
 * short human lines (src/log-human.ts; `logFormatFrom` picks). Fields whose names look like secrets are redacted
 * before they are written — but the rule is that secrets are never passed to the logger.
 */
import { formatHumanLine, type LogFormat } from "./log-human.ts";
export { type LogFormat, logFormatFrom } from "./log-human.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  readonly level: LogLevel;
}

const SECRET_FIELD = /key|token|secret|password|authorization|credential/i;

export function createLogger(
  level: LogLevel,
  sink: (line: string) => void = (line) => console.log(line),
  base: LogFields = {},
  format: LogFormat = "json",
): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const write = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const record: LogFields = { time: new Date().toISOString(), level: lvl, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) {
      record[k] = SECRET_FIELD.test(k) && typeof v === "string" ? "[redacted]" : v;
    }
    if (format === "human") {
      const { time: _time, level: _level, msg: _msg, ...rest } = record;
      sink(formatHumanLine(lvl, msg, rest));
      return;
    }
    sink(JSON.stringify(record, (_k, v) => v instanceof Error ? { name: v.name, message: v.message } : v));
  };
  return {
    level,
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(level, sink, { ...base, ...fields }, format),
  };
}
