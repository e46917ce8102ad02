/**
 * `POST /v1/embeddings` in OpenAI's shape: `input` as a string, an array of strings, an array of token ids or an
 * array of those; `dimensions` where the model allows shorter vectors (Matryoshka models); `encoding_format`
 * float or base64; usage. The whole request is one job in the model's `embed:<model>` lane, so a worker embeds
 * the batch in one go; vectors travel from the worker as base64 float32 (exact, a third of JSON's size).
 */
import type { IRequest } from "itty-router";
import { z } from "zod";
import { errorFromEvent } from "../../dispatch/chat.ts";
import { JobRun, type JobTarget } from "../../dispatch/job-run.ts";
import { json } from "../../http/responses.ts";
import type { RouterContext } from "../../dispatch/context.ts";
import { ApiError } from "../../http/errors.ts";
import { assertModelServed, withModelNamed } from "../../policy/availability.ts";
import { laneOf, resolveModel } from "../../policy/route.ts";
import type { JobEvent } from "../../protocol/events.ts";
import type { PolicyModel } from "../../protocol/worker-protocol.ts";

/** OpenAI's own limit on inputs per request. */
const MAX_INPUTS = 2048;

const TokenIds = z.array(z.number().int().nonnegative()).min(1);
export const EmbeddingsRequest = z.object({
  model: z.string().min(1),
  input: z.union([
    z.string().min(1),
    z.array(z.string().min(1)).min(1).max(MAX_INPUTS),
    TokenIds,
    z.array(TokenIds).min(1).max(MAX_INPUTS),
  ]),
  dimensions: z.number().int().positive().optional(),
  encoding_format: z.enum(["float", "base64"]).default("float"),
  user: z.string().optional(),
}).passthrough();
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequest>;

/** The inputs as a list: one string, or one token array, is a batch of one. */
export function inputsOf(input: EmbeddingsRequest["input"]): (string | number[])[] {
  if (typeof input === "string") return [input];
  if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
  return input as (string | number[])[];
}

export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  const parsed = EmbeddingsRequest.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const param = issue.path.join(".") || "body";
  throw new ApiError("invalid_request", `Invalid '${param}': ${issue.message}.`, { param });
}

/** Refuses a `dimensions` the model cannot give when the router knows its vectors (registry models). */
export function checkDimensions(model: PolicyModel, dimensions: number | undefined): void {
  if (dimensions === undefined || model.dimensions === undefined || dimensions === model.dimensions) return;
  const min = model.minDimensions;
  if (dimensions > model.dimensions || min === undefined || dimensions < min) {
    const allowed = min === undefined ? `only ${model.dimensions}` : `${min} to ${model.dimensions}`;
    throw new ApiError(
      "invalid_request",
      `Invalid 'dimensions': ${model.name} gives vectors of ${allowed} dimensions, not ${dimensions}.`,
      { param: "dimensions" },
    );
  }
}

export async function handleEmbeddings(ctx: RouterContext, raw: unknown, signal: AbortSignal): Promise<Response> {
  // With no embedding model configured, every request is a 501 saying how to configure one, whatever its body.
  const named = (raw as { model?: unknown } | null)?.model;
  resolveModel(ctx.config.policy, ctx.config.aliases, typeof named === "string" ? named : undefined, "embedding");
  const request = parseEmbeddingsRequest(raw);
  const model = resolveModel(ctx.config.policy, ctx.config.aliases, request.model, "embedding");
  checkDimensions(model, request.dimensions);
  await assertModelServed(ctx, model);
  const input = inputsOf(request.input);
  const now = ctx.now();
  const id = crypto.randomUUID().replaceAll("-", "");
  // One job for the whole batch; a worker lost before it answered means the batch is simply queued again.
  const target: JobTarget = {
    lane: laneOf(model),
    payload: (jobId) => ({
      id: jobId,
      kind: "embedding",
      model: model.name,
      input,
      ...(request.dimensions ? { dimensions: request.dimensions } : {}),
    }),
    resumable: false,
  };
  const run = new JobRun(ctx, id, target, "generate", now);
  await run.enqueue(id, undefined, now);
  const job = withModelNamed(run, model.name);
  const onAbort = () => void job.cancel("caller_left").catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const events: JobEvent[] = [];
  try {
    while (!job.finished) events.push(...await job.next(signal, false));
  } catch (err) {
    if (!job.finished) await job.cancel(signal.aborted ? "caller_left" : "timeout");
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  const error = events.find((e) => e.type === "error");
  if (error) throw errorFromEvent(error);
  return json(embeddingsBody(events, input.length, request.encoding_format, model.name), { "x-request-id": id });
}

/** The response body from the job's events: vectors in input order, usage from the worker's count. */
export function embeddingsBody(events: JobEvent[], count: number, format: "float" | "base64", model: string) {
  const vectors: (string | undefined)[] = new Array(count);
  let promptTokens = 0;
  for (const event of events) {
    if (event.type === "embedding" && event.index < count) vectors[event.index] = event.base64;
    if (event.type === "usage") promptTokens = event.usage.promptTokens;
  }
  const missing = vectors.findIndex((v) => v === undefined);
  if (missing >= 0 || vectors.length !== count) {
    throw new ApiError("api_error", `The worker returned no embedding for input ${missing}.`, { status: 502 });
  }
  return {
    object: "list",
    data: vectors.map((base64, index) => ({
      object: "embedding",
      index,
      embedding: format === "base64" ? base64! : decodeFloat32(base64!),
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/** Little-endian float32 values from base64 (OpenAI's base64 encoding of embeddings). */
export function decodeFloat32(base64: string): number[] {
  const binary = atob(base64);
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
  const out = new Array<number>(binary.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

export function encodeFloat32(values: ArrayLike<number>): string {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  const bytes = new Uint8Array(view.buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The handler of `POST …/embeddings` (OpenAI-flavoured) in the route table. */
export function embeddingsHandler(ctx: RouterContext, body: (request: IRequest) => Promise<unknown>) {
  // The route table's `before` stage has authenticated the caller already.
  return async (request: IRequest) => await handleEmbeddings(ctx, await body(request), request.signal);
}
