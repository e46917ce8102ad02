/**
 * The worker protocol (version 1): how GPU, CLI and tools workers talk to the router over plain HTTPS.
 * Documented in docs/worker-protocol.md; these schemas are the single source of truth and are used on both sides.
 *
 *   POST {base}/worker/v1/poll               long-poll for jobs (answers with the policy and 0..free jobs)
 *   POST {base}/worker/v1/jobs/{id}/events   post a batch of a job's events (answers whether it was cancelled)
 *
 * Authentication: `Authorization: Bearer adm_...` (GPU and CLI workers) or `tls_...` (tools workers).
 */
import { z } from "zod";
import { ChatRequest, ToolDefinition } from "./chat.ts";
import { JobEvent } from "./events.ts";

export const PROTOCOL_VERSION = 1;

export const WorkerKind = z.enum(["gpu", "cli", "tools"]);
export type WorkerKind = z.infer<typeof WorkerKind>;

/** What a worker serves right now; the router hands chat jobs only to workers whose `policyVersion` is current. */
export const LoadedModel = z.object({
  policyVersion: z.string(),
  model: z.string(),
  quantization: z.string().optional(),
  ctxSize: z.number().int().positive().optional(),
  parallel: z.number().int().positive().optional(),
  /** Why the worker chose less than the policy asked for (e.g. "parallel lowered to 1: 6.1 GB free VRAM"). */
  note: z.string().optional(),
});
export type LoadedModel = z.infer<typeof LoadedModel>;

/**
 * One model a worker serves now, with its own slots (several-model policies, see src/policy/): the router hands a
 * worker jobs only for models it lists here, at most as many as the model has free slots.
 */
export const ServedModel = z.object({
  /** The policy's name for it (`PolicyModel.name`). */
  model: z.string().max(200),
  kind: z.enum(["chat", "embedding"]),
  slots: z.number().int().min(0).max(1024),
  free: z.number().int().min(0).max(1024),
  quantization: z.string().max(40).optional(),
  ctxSize: z.number().int().positive().optional(),
  /** Embedding models: the length of the vectors it produces. */
  dimensions: z.number().int().positive().optional(),
  note: z.string().max(500).optional(),
});
export type ServedModel = z.infer<typeof ServedModel>;

export const WorkerInfo = z.object({
  /** Stable for the life of the worker process; chosen by the worker (a random UUID). */
  id: z.string().min(8).max(80).regex(/^[A-Za-z0-9._:-]+$/),
  kind: WorkerKind,
  name: z.string().max(120).optional(),
  version: z.string().max(40).optional(),
  /** Slots in total and free now; the router sends at most `free` jobs. */
  slots: z.number().int().min(0).max(1024),
  free: z.number().int().min(0).max(1024),
  loaded: LoadedModel.optional(),
  /** Tools workers: the tools this worker can run (at most 64, 256 KiB of JSON in all: 413 beyond). */
  tools: z.array(ToolDefinition).max(64).optional(),
  hardware: z.object({
    backend: z.string().max(40).optional(),
    gpu: z.string().max(200).optional(),
    vramBytes: z.number().nonnegative().optional(),
  }).optional(),
  /** Conversation keys whose KV cache this worker holds in a free slot (prompt-cache affinity). */
  cachedConversations: z.array(z.string().max(200)).max(256).optional(),
  tokensPerSecond: z.number().nonnegative().optional(),
  /** Models served now, each with its own slots. Absent: the worker serves the policy's default model (`loaded`). */
  models: z.array(ServedModel).max(64).optional(),
  /** Posts within a second of being handed a job: a job it never posts for is taken back within seconds. */
  postsProgress: z.boolean().optional(),
});
export type WorkerInfo = z.infer<typeof WorkerInfo>;

export const PollRequest = z.object({
  protocol: z.number().int(),
  worker: WorkerInfo,
  /** Jobs the worker is still running: their leases are extended by this poll. */
  activeJobs: z.array(z.string().max(80)).max(1024).default([]),
  /** The lease token of each active job (job id → `leaseToken`): a job without its token is not extended. */
  leases: z.record(z.string().max(80), z.string().max(200)).optional(),
  /** How long the router may hold the poll open (it caps this at its own limit, ~25 s). */
  waitMs: z.number().int().min(0).max(60_000).optional(),
});
export type PollRequest = z.infer<typeof PollRequest>;

const ModelFiles = z.array(z.object({
  quantization: z.string(),
  huggingFaceRepo: z.string(),
  file: z.string(),
  sizeGb: z.number().optional(),
  /** Number of `-0000N-of-0000M` shards (absent: one file). */
  shards: z.number().int().positive().optional(),
  /** Vision projector file in the same repo, when the model has one. */
  mmproj: z.string().optional(),
  /** Pinned repository commit and per-file sha256 from the registry, when it has them. */
  revision: z.string().optional(),
  sha256: z.record(z.string(), z.string()).optional(),
}));

/** One model of a several-model policy (AUXOT_MODELS, AUXOT_EMBEDDING_MODELS), with its own settings. */
export const PolicyModel = z.object({
  name: z.string(),
  kind: z.enum(["chat", "embedding"]),
  quantization: z.string().optional(),
  files: ModelFiles.optional(),
  /** Context per slot; absent for embedding models that use their own trained context. */
  ctxSize: z.number().int().positive().optional(),
  maxParallel: z.number().int().positive(),
  /** Registry capabilities ("chat", "vision", "reasoning", "code", "embedding"). */
  capabilities: z.array(z.string()).default([]),
  /** Embedding models: vector length, and the smallest `dimensions` a caller may ask for (Matryoshka models). */
  dimensions: z.number().int().positive().optional(),
  minDimensions: z.number().int().positive().optional(),
});
export type PolicyModel = z.infer<typeof PolicyModel>;

/** The model policy every worker follows. `version` changes whenever any field changes. */
export const Policy = z.object({
  version: z.string(),
  engine: z.enum(["llama", "cli"]),
  model: z.object({
    /** Registry name (e.g. "Qwen3.5-35B-A3B"), or a custom name for a worker's own --model-path file. */
    name: z.string(),
    /** Requested quantization; absent means the worker picks the best that fits. */
    quantization: z.string().optional(),
    /** Quantizations the registry lists for this model with their files (absent for custom models). */
    files: ModelFiles.optional(),
  }),
  ctxSize: z.number().int().positive(),
  maxParallel: z.number().int().positive(),
  /** CLI mode: built-in CLI tools the operator enabled (empty = none). */
  cliTools: z.array(z.string()).optional(),
  /**
   * Every model of the policy, the default chat model (`model`, `ctxSize`, `maxParallel` above) first. Absent on a
   * one-model policy from an older router. A worker serves those that fit its memory, or those named by `--models`.
   */
  models: z.array(PolicyModel).optional(),
});
export type Policy = z.infer<typeof Policy>;

/**
 * Continuation (version 1): the job's previous worker was lost after output had reached the caller, so this job
 * resumes the same answer. The worker evaluates the prompt followed by the output so far — `tokens` when the lost
 * worker reported them (same model, so the same vocabulary), else the text — and emits only what comes next. Its
 * `start` event says `continued: true`. A worker that cannot resume (another engine, a grammar-constrained answer)
 * ends the job with a non-retryable error of code "continuation_unsupported". Tool calls are never continued: a
 * lost job that had begun one fails explicitly (docs/worker-protocol.md).
 */
export const Continuation = z.object({
  version: z.literal(1),
  /** 1 for the first continuation of an answer, 2 for the next... */
  count: z.number().int().positive(),
  /** The policy the lost worker served: a worker on another policy must not resume it. */
  policyVersion: z.string(),
  /** Visible answer text and reasoning text already sent to the caller, in full. */
  text: z.string(),
  reasoning: z.string(),
  /** The model's token ids for all output so far (reasoning and text, in order), when every event carried them. */
  tokens: z.array(z.number().int().nonnegative()).optional(),
  /** Tokens generated so far (counts against maxTokens). */
  completionTokens: z.number().int().nonnegative(),
});
export type Continuation = z.infer<typeof Continuation>;

export const ChatJob = z.object({
  id: z.string(),
  kind: z.literal("chat"),
  request: ChatRequest,
  /** "count_tokens": render the prompt, emit `start` with promptTokens and `done`, generate nothing. */
  mode: z.enum(["generate", "count_tokens"]).default("generate"),
  /** The policy model that serves this job (absent: the default chat model). */
  model: z.string().optional(),
  /** Present when this job resumes an answer whose worker was lost (see Continuation). */
  continuation: Continuation.optional(),
  /**
   * false: the caller waits for the whole answer, so the first output need not be posted on its own (it rides in
   * the next batch); a short answer then costs one post. Absent: the caller streams.
   */
  stream: z.boolean().optional(),
  /** Attempt number, starting at 1; higher when a job was re-queued after a lost lease. */
  attempt: z.number().int().positive(),
  /** Milliseconds left before the router gives up on this job (AUXOT_JOB_TIMEOUT). */
  deadlineMs: z.number().int().nonnegative(),
  /** Set by the router on every job it hands out: send it back with the job's events and in `leases`. */
  leaseToken: z.string().max(200).optional(),
});
export const ToolJob = z.object({
  id: z.string(),
  kind: z.literal("tool"),
  tool: z.string(),
  arguments: z.record(z.string(), z.unknown()),
  /** Credentials for this tool only (AUXOT_TOOLS_{TOOL}__{NAME}), for this call only. */
  credentials: z.record(z.string(), z.string()),
  attempt: z.number().int().positive(),
  deadlineMs: z.number().int().nonnegative(),
  leaseToken: z.string().max(200).optional(),
});
/** Embeddings for a batch of inputs (text, or token ids), one `embedding` event per input in input order. */
export const EmbeddingJob = z.object({
  id: z.string(),
  kind: z.literal("embedding"),
  model: z.string(),
  input: z.array(z.union([z.string(), z.array(z.number().int().nonnegative())])).min(1).max(2048),
  /** Shorter vectors (Matryoshka models): the first `dimensions` values, normalised again. */
  dimensions: z.number().int().positive().optional(),
  attempt: z.number().int().positive(),
  deadlineMs: z.number().int().nonnegative(),
  leaseToken: z.string().max(200).optional(),
});
export const WorkerJob = z.discriminatedUnion("kind", [ChatJob, ToolJob, EmbeddingJob]);
export type WorkerJob = z.infer<typeof WorkerJob>;
export type ChatJob = z.infer<typeof ChatJob>;
export type ToolJob = z.infer<typeof ToolJob>;
export type EmbeddingJob = z.infer<typeof EmbeddingJob>;

/** Whether the job's caller takes its output as it comes (a streamed chat answer), not whole at the end. */
export function callerStreams(job: { kind: string; stream?: boolean }): boolean {
  return !(job.kind === "chat" && job.stream === false);
}

export const PollResponse = z.object({
  protocol: z.number().int(),
  policy: Policy,
  jobs: z.array(WorkerJob),
  /** Jobs of this worker that were cancelled (caller left, timed out): stop them and free the slot. */
  cancelled: z.array(z.string()),
  /** Lease length: the worker must poll or post at least this often (minus a margin) for each active job. */
  leaseMs: z.number().int().positive(),
  /** How long the worker may hold a job's events before posting them (the store's cost decides: ~20 ms embedded). */
  flushMs: z.number().int().positive(),
  /**
   * On a store where each post is billed, the hold doubles after each batch of a job up to this (first token
   * still goes out at once): a long answer costs a few posts, not one every `flushMs`. Absent: always `flushMs`.
   */
  maxFlushMs: z.number().int().positive().optional(),
});
export type PollResponse = z.infer<typeof PollResponse>;

export const EventsRequest = z.object({
  workerId: z.string().max(80),
  /** The job's `leaseToken` from the poll that handed it out. */
  leaseToken: z.string().max(200),
  /** Index of the first event in this batch within the job's stream: makes a retried post idempotent. */
  seq: z.number().int().nonnegative(),
  events: z.array(JobEvent).max(10_000),
});
export type EventsRequest = z.infer<typeof EventsRequest>;

export const EventsResponse = z.object({
  /** True when the job was cancelled: the worker must stop it and free the slot. */
  cancelled: z.boolean(),
  /** Events stored so far (the next batch's `seq`). */
  next: z.number().int().nonnegative(),
});
export type EventsResponse = z.infer<typeof EventsResponse>;

/** Error body of the worker endpoints. `fatal` tells the worker to exit instead of retrying. */
export const WorkerError = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
  fatal: z.boolean(),
});
export type WorkerError = z.infer<typeof WorkerError>;
