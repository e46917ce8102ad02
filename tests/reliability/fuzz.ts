/**
 * Property-based fuzzing (fast-check) of the router's HTTP surface: the OpenAI and Anthropic chat endpoints, the
 * tools endpoints (execute, MCP) and the worker protocol (poll, events). Inputs are arbitrary JSON, valid requests
 * with fields replaced by anything, raw bytes that are not UTF-8 or not JSON, deeply nested documents and bodies past
 * the size limit. For every one: no 5xx (these are all the client's mistakes, or valid requests a worker answers),
 * and every error in that API's own JSON shape. The caller also checks afterwards that the router logged no
 * unexpected error and still serves.
 */
import fc from "fast-check";
import type { WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "../../workers/common/engine.ts";
import { startDenoRouter, startWorker, type TestKeys } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { streamCall } from "./caller.ts";

export interface FuzzTarget {
  url: string;
  keys: TestKeys;
  /** The router's AUXOT_MAX_BODY_BYTES. */
  maxBodyBytes: number;
}

/** What a fuzzed request must get back: the shape its errors must have. */
type Shape = "openai" | "anthropic" | "worker" | "jsonrpc";

interface Endpoint {
  name: string;
  path: string;
  key: keyof Omit<TestKeys, "env">;
  shape: Shape;
  headers?: Record<string, string>;
  /** Valid-looking bodies with parts replaced by anything. */
  mutated: fc.Arbitrary<unknown>;
}

export interface FuzzStats {
  endpoint: string;
  requests: number;
  byStatus: Record<string, number>;
}

const anything = fc.jsonValue({ maxDepth: 3 });
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }));
const name = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
);
/** A prompt the scripted worker answers at once (no "hang"/"slow"/"fail" instruction by chance). */
const prompt = text.map((s) => `echo ${s}`);
/** Mostly the valid value, sometimes anything at all: most requests are nearly right, as real mistakes are. */
const maybe = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 15, arbitrary: valid }, { weight: 1, arbitrary: anything });

const contentPart = fc.oneof(
  fc.record({ type: maybe(fc.constant("text")), text: maybe(prompt) }, { requiredKeys: [] }),
  fc.record({ type: fc.constant("image_url"), image_url: maybe(fc.record({ url: maybe(fc.webUrl()) })) }),
  fc.record({ type: fc.constant("image"), source: anything }),
  anything,
);

const openaiMessage = fc.record({
  role: maybe(fc.constantFrom("user", "assistant", "system", "developer", "tool")),
  content: maybe(fc.oneof(prompt, fc.array(contentPart, { maxLength: 3 }), fc.constant(null))),
  tool_calls: fc.array(anything, { maxLength: 2 }),
  tool_call_id: text,
  name: text,
}, { requiredKeys: ["role", "content"] });

const tool = fc.record({
  type: maybe(fc.constant("function")),
  function: maybe(fc.record({ name: maybe(text), description: text, parameters: anything }, { requiredKeys: [] })),
  name: text,
  input_schema: anything,
}, { requiredKeys: [] });

const openaiChat = fc.record({
  model: maybe(name),
  messages: maybe(fc.array(maybe(openaiMessage), { maxLength: 4 })),
  stream: maybe(fc.boolean()),
  stream_options: maybe(fc.record({ include_usage: maybe(fc.boolean()) })),
  max_tokens: maybe(fc.integer({ min: 1, max: 4096 })),
  max_completion_tokens: maybe(fc.integer({ min: -1, max: 4096 })),
  temperature: maybe(fc.double({ min: 0, max: 2, noNaN: true })),
  top_p: maybe(fc.double({ min: 0, max: 1, noNaN: true })),
  n: maybe(fc.constant(1)),
  stop: maybe(fc.oneof(text, fc.array(text, { maxLength: 4 }))),
  tools: maybe(fc.array(tool, { maxLength: 3 })),
  tool_choice: maybe(fc.oneof(fc.constantFrom("auto", "none", "required"), anything)),
  response_format: maybe(fc.record({ type: maybe(fc.constantFrom("text", "json_object", "json_schema")) })),
  reasoning_effort: maybe(fc.constantFrom("low", "medium", "high")),
  seed: maybe(fc.integer()),
}, { requiredKeys: ["model", "messages"] });

const openaiCompletion = fc.record({
  model: maybe(name),
  prompt: maybe(fc.oneof(prompt, fc.array(prompt, { maxLength: 3 }))),
  max_tokens: maybe(fc.integer({ min: 1, max: 4096 })),
  stream: maybe(fc.boolean()),
}, { requiredKeys: ["model", "prompt"] });

const anthropicBlock = fc.oneof(
  fc.record({ type: maybe(fc.constant("text")), text: maybe(prompt) }),
  fc.record({ type: fc.constant("tool_result"), tool_use_id: maybe(text), content: maybe(fc.oneof(text, anything)) }),
  fc.record({ type: fc.constant("tool_use"), id: maybe(text), name: maybe(text), input: anything }),
  fc.record({ type: fc.constant("thinking"), thinking: maybe(text), signature: maybe(text) }),
  anything,
);

const anthropicMessages = fc.record({
  model: maybe(name),
  max_tokens: maybe(fc.integer({ min: 1, max: 100_000 })),
  system: maybe(
    fc.oneof(text, fc.array(fc.record({ type: maybe(fc.constant("text")), text: maybe(text) }), { maxLength: 2 })),
  ),
  messages: maybe(fc.array(
    maybe(fc.record({
      role: maybe(fc.constantFrom("user", "assistant")),
      content: maybe(fc.oneof(prompt, fc.array(anthropicBlock, { maxLength: 3 }))),
    })),
    { maxLength: 4 },
  )),
  stream: maybe(fc.boolean()),
  tools: maybe(fc.array(tool, { maxLength: 3 })),
  tool_choice: maybe(anything),
  thinking: maybe(
    fc.record({ type: maybe(fc.constantFrom("enabled", "disabled")), budget_tokens: maybe(fc.integer()) }),
  ),
  stop_sequences: maybe(fc.array(text, { maxLength: 3 })),
  metadata: maybe(fc.record({ user_id: maybe(text) })),
}, { requiredKeys: ["model", "max_tokens", "messages"] });

const toolsExecute = fc.record({ name: maybe(text), arguments: maybe(anything) }, { requiredKeys: [] });

const jsonRpc = fc.record({
  jsonrpc: maybe(fc.constant("2.0")),
  id: maybe(fc.oneof(fc.integer(), text, fc.constant(null))),
  method: maybe(fc.constantFrom("initialize", "ping", "tools/list", "tools/call", "notifications/initialized")),
  params: maybe(fc.record({ name: maybe(text), arguments: maybe(anything), protocolVersion: maybe(text) })),
}, { requiredKeys: [] });

/** A worker poll with fields replaced by anything; never a long wait (waitMs is 0 or not a number). */
const poll = fc.record({
  protocol: maybe(fc.constant(1)),
  worker: maybe(fc.record({
    id: maybe(text),
    kind: maybe(fc.constantFrom("gpu", "cli", "tools")),
    slots: maybe(fc.integer({ min: -2, max: 4 })),
    free: fc.oneof(fc.constant(0), fc.string()), // never a free slot: a fuzzed poll must not take real jobs
    loaded: maybe(anything),
    tools: maybe(fc.array(anything, { maxLength: 2 })),
    cachedConversations: maybe(fc.array(text, { maxLength: 3 })),
  }, { requiredKeys: ["free"] })),
  activeJobs: maybe(fc.array(text, { maxLength: 3 })),
  waitMs: fc.oneof(fc.constant(0), fc.string()),
}, { requiredKeys: ["waitMs"] });

const events = fc.record({
  workerId: maybe(text),
  seq: maybe(fc.integer({ min: -1, max: 5 })),
  events: maybe(fc.array(
    maybe(fc.record({
      type: maybe(fc.constantFrom("start", "text", "reasoning", "tool_call", "tool_args", "usage", "done", "error")),
      text: maybe(text),
      message: maybe(text),
      finishReason: maybe(fc.constantFrom("stop", "length")),
    })),
    { maxLength: 4 },
  )),
}, { requiredKeys: [] });

export const ENDPOINTS: Endpoint[] = [
  { name: "openai chat", path: "/v1/chat/completions", key: "api", shape: "openai", mutated: openaiChat },
  { name: "openai completions", path: "/v1/completions", key: "api", shape: "openai", mutated: openaiCompletion },
  { name: "anthropic messages", path: "/v1/messages", key: "api", shape: "anthropic", mutated: anthropicMessages },
  {
    name: "anthropic count_tokens",
    path: "/v1/messages/count_tokens",
    key: "api",
    shape: "anthropic",
    mutated: anthropicMessages,
  },
  { name: "tools execute", path: "/v1/tools/execute", key: "api", shape: "openai", mutated: toolsExecute },
  { name: "mcp", path: "/mcp", key: "api", shape: "jsonrpc", mutated: jsonRpc },
  { name: "worker poll", path: "/worker/v1/poll", key: "admin", shape: "worker", mutated: poll },
  { name: "worker events", path: "/worker/v1/jobs/fuzzed-job/events", key: "admin", shape: "worker", mutated: events },
];

/** Bodies that are not a JSON document the endpoint expects: raw bytes, broken JSON, deep nesting, oversized. */
function hostileBodies(maxBodyBytes: number): fc.Arbitrary<Uint8Array<ArrayBuffer> | string> {
  const encoder = new TextEncoder();
  return fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((bytes) => new Uint8Array(bytes)), // mostly not UTF-8
    fc.string({ maxLength: 200 }),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v).slice(0, -1)), // truncated JSON
    fc.integer({ min: 50, max: 20_000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
    fc.integer({ min: 50, max: 5_000 }).map((depth) => `{"messages":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`),
    fc.integer({ min: 1, max: 3 }).map((k) => encoder.encode(`{"messages":"${"x".repeat(maxBodyBytes * k)}"}`)),
    fc.constantFrom("", " ", "null", "[]", "{}", "0", '"', "\u0000", "\ufeff{}"),
  );
}

function isShaped(shape: Shape, body: unknown, status: number): boolean {
  const record = body as Record<string, unknown> | null;
  if (typeof record !== "object" || record === null) return false;
  const error = record.error as Record<string, unknown> | undefined;
  switch (shape) {
    case "openai":
      return typeof error?.message === "string" && typeof error.type === "string";
    case "anthropic":
      return record.type === "error" && typeof error?.message === "string" && typeof error.type === "string";
    case "worker":
      return typeof error?.message === "string" && typeof error.code === "string" && typeof record.fatal === "boolean";
    case "jsonrpc":
      // A 401/413 is the router's own (OpenAI shape); the rest are JSON-RPC error objects.
      if (status === 401 || status === 413 || status === 429) return isShaped("openai", body, status);
      return record.jsonrpc === "2.0" && typeof error?.message === "string" && typeof error.code === "number";
  }
}

/** Sends one body and checks the answer; returns the status (throws with the evidence on a violation). */
async function check(target: FuzzTarget, endpoint: Endpoint, body: BodyInit, headers: Record<string, string> = {}) {
  const response = await fetch(`${target.url}${endpoint.path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${target.keys[endpoint.key]}`,
      "content-type": "application/json",
      ...(endpoint.shape === "anthropic" ? { "anthropic-version": "2023-06-01" } : {}),
      ...headers,
    },
    body,
  });
  const text = await response.text();
  const summary = `${endpoint.name}: HTTP ${response.status} for ${String(body).slice(0, 300)}\n→ ${
    text.slice(0, 300)
  }`;
  if (response.status >= 500) throw new Error(`a 5xx for a client's request: ${summary}`);
  if (response.ok) return response.status;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`an error that is not JSON: ${summary}`);
  }
  if (!isShaped(endpoint.shape, parsed, response.status)) {
    throw new Error(`an error not in the API's shape: ${summary}`);
  }
  return response.status;
}

/** Fuzzes every endpoint with `runs` mutated bodies and `runs` hostile ones; returns what statuses came back. */
export async function fuzzEndpoints(target: FuzzTarget, runs: number, seed?: number): Promise<FuzzStats[]> {
  const stats: FuzzStats[] = [];
  for (const endpoint of ENDPOINTS) {
    const byStatus: Record<string, number> = {};
    const count = (status: number): void => {
      byStatus[status] = (byStatus[status] ?? 0) + 1;
    };
    await fc.assert(
      fc.asyncProperty(endpoint.mutated, async (body) => count(await check(target, endpoint, JSON.stringify(body)))),
      { numRuns: runs, seed, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(hostileBodies(target.maxBodyBytes), async (body) => count(await check(target, endpoint, body))),
      { numRuns: runs, seed, endOnFailure: true },
    );
    // Wrong or missing credentials and content types are the client's mistakes too.
    count(await check(target, endpoint, "{}", { authorization: "Bearer nonsense" }));
    count(await check(target, endpoint, "{}", { authorization: "" }));
    count(await check(target, endpoint, "messages=1", { "content-type": "application/x-www-form-urlencoded" }));
    stats.push({ endpoint: endpoint.name, requests: Object.values(byStatus).reduce((a, b) => a + b, 0), byStatus });
  }
  return stats;
}

/** Answers every job with "ok": a fuzzed prompt must never turn into a scripted "hang" or "fail" by chance. */
export class OkEngine extends ScriptedEngine {
  override run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") return super.run(job, sink, signal);
    return super.run({ ...job, request: { ...job.request, prompt: "echo ok" } }, sink, signal);
  }
}

export interface FuzzFigures {
  stats: FuzzStats[];
  /** Error-level lines the router logged: an unexpected exception each. */
  unexpectedErrors: string[];
  /** Whether a normal request still completed after the fuzz. */
  stillServes: boolean;
}

const FUZZ_MAX_BODY_BYTES = 64 * 1024;

/**
 * Fuzzes an in-process router (with a worker that answers "ok") with `runs` bodies of each kind per endpoint. A
 * violation (a 5xx, an error not in the API's shape) throws with fast-check's counterexample.
 */
export async function runFuzz(runs: number, seed?: number): Promise<FuzzFigures> {
  const router = await startDenoRouter({ AUXOT_MAX_BODY_BYTES: String(FUZZ_MAX_BODY_BYTES), AUXOT_LOG_LEVEL: "info" });
  const worker = startWorker(router, new OkEngine({ slots: 8 }), { key: router.keys.admin, pollWaitMs: 1_000 });
  try {
    // The engine answers "ok" to anything; the caller expects the words of its prompt ("ok" plus a space).
    const call = async () => {
      const outcome = await streamCall({
        url: router.url,
        key: router.keys.api,
        flavour: "openai",
        words: ["ok"],
        deadlineMs: 30_000,
      });
      return outcome.kind === "duplicated" && outcome.detail === "ok";
    };
    // The keys are verified before the fuzz, so that throttling of wrong keys cannot touch them.
    if (!await call()) throw new Error("the router did not serve before the fuzz");
    await check({ url: router.url, keys: router.keys, maxBodyBytes: FUZZ_MAX_BODY_BYTES }, ENDPOINTS[6], "{}");
    const stats = await fuzzEndpoints(
      { url: router.url, keys: router.keys, maxBodyBytes: FUZZ_MAX_BODY_BYTES },
      runs,
      seed,
    );
    return {
      stats,
      unexpectedErrors: router.logs.filter((line) => line.includes('"level":"error"')),
      stillServes: await call(),
    };
  } finally {
    await worker.stop();
    await router.close();
  }
}
