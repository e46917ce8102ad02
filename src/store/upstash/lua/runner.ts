/**
 * Lua scripts as string modules (Workers have no file system) and the runner that calls them: EVALSHA with the
 * SHA1 computed once per script (crypto.subtle), falling back to EVAL when Redis answers NOSCRIPT (a restarted or
 * flushed server), which also loads the script for the next call. Every script is written to be safe to repeat, so
 * the runner lets the REST client retry it through short outages.
 *
 * KEYS and ARGV are named, not positional: `defineScript` turns the declared names into Lua locals (`KEY_job`,
 * `ARG_now`, ...) at the top of the source, and `ScriptRunner.run` orders the caller's named values the same way,
 * so the TypeScript and Lua sides cannot disagree on positions. Arguments after the named ones are the script's
 * variadic part (`ARGV[NAMED_ARGS + i]`). Shared Lua helpers declare the names they need; a script that includes
 * a helper without declaring them fails at module load, not in production.
 */
import { RedisReplyError, type RedisValue, type UpstashRest } from "../rest.ts";

/** Status codes scripts return as their first element (one enum for every script). */
export const ScriptStatus = {
  ok: "ok",
  unknownJob: "unknown_job",
  notLeased: "not_leased",
  seqGap: "seq_gap",
  queueFull: "queue_full",
  duplicate: "duplicate",
  noop: "noop",
  locked: "locked",
} as const;

export interface LuaHelper {
  /** Lua source defining local functions. */
  source: string;
  keys: readonly string[];
  args: readonly string[];
}

export interface LuaScript<K extends string, A extends string> {
  name: string;
  keys: readonly K[];
  args: readonly A[];
  source: string;
}

export function defineScript<const K extends string, const A extends string>(definition: {
  name: string;
  keys: readonly K[];
  args: readonly A[];
  helpers?: readonly LuaHelper[];
  body: string;
}): LuaScript<K, A> {
  const { name, keys, args, helpers = [], body } = definition;
  for (const helper of helpers) {
    const missing = [
      ...helper.keys.filter((k) => !(keys as readonly string[]).includes(k)).map((k) => `KEY_${k}`),
      ...helper.args.filter((a) => !(args as readonly string[]).includes(a)).map((a) => `ARG_${a}`),
    ];
    if (missing.length > 0) throw new Error(`Lua script ${name}: a helper needs ${missing.join(", ")}`);
  }
  const source = [
    `-- auxot: ${name}`,
    ...keys.map((key, i) => `local KEY_${key} = KEYS[${i + 1}]`),
    ...args.map((arg, i) => `local ARG_${arg} = ARGV[${i + 1}]`),
    `local NAMED_ARGS = ${args.length}`,
    ...helpers.map((helper) => helper.source.trim()),
    body.trim(),
    "",
  ].join("\n");
  return { name, keys, args, source };
}

/**
 * Script digests, cached as strings: a cached promise would be created by one request and awaited by others, which
 * Workers forbid (a request must never wait on a promise another request settles). Two requests may both compute
 * a digest the first time; that is cheap.
 */
const shaCache = new Map<string, string>();

async function sha1(source: string): Promise<string> {
  const cached = shaCache.get(source);
  if (cached) return cached;
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(source));
  const sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  shaCache.set(source, sha);
  return sha;
}

export class ScriptRunner {
  readonly #rest: UpstashRest;

  constructor(rest: UpstashRest) {
    this.#rest = rest;
  }

  async run<K extends string, A extends string>(
    script: LuaScript<K, A>,
    keys: Record<K, string>,
    args: Record<A, string | number>,
    variadic: readonly (string | number)[] = [],
  ): Promise<RedisValue> {
    const keyList = script.keys.map((key) => keys[key]);
    const argList = [...script.args.map((arg) => args[arg]), ...variadic];
    const sha = await sha1(script.source);
    try {
      return await this.#rest.command(["EVALSHA", sha, keyList.length, ...keyList, ...argList], { retry: true });
    } catch (err) {
      if (!(err instanceof RedisReplyError)) throw err;
      if (!err.message.startsWith("NOSCRIPT")) throw scriptError(script.name, err);
    }
    try {
      return await this.#rest.command(["EVAL", script.source, keyList.length, ...keyList, ...argList], { retry: true });
    } catch (err) {
      throw err instanceof RedisReplyError ? scriptError(script.name, err) : err;
    }
  }
}

/** A script that fails is a bug (or a server that lacks a command), never an expected outcome. */
function scriptError(name: string, err: RedisReplyError): Error {
  return new Error(`Lua script ${name} failed: ${err.message}`, { cause: err });
}
