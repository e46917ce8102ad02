/**
 * Quantization fit: given the quantizations of a model (their GGUF headers, or weight sizes and shapes), the
 * memory free on this machine, and the context and parallelism the policy asks for, picks the best quantization
 * that fits, lowering parallelism and then context when nothing fits as asked. Pure arithmetic: no I/O
 * (workers/gpu/memory.ts measures free memory; workers/gpu/gguf-header.ts reads headers).
 *
 * Memory needed = weights + KV cache + compute buffers + a fixed overhead:
 *   weights  = every tensor's bytes (all layers are offloaded)
 *   KV cache = ctx × parallel × Σ_layers kv_heads × (key_length + value_length) × 2 bytes (f16 cache)
 *              — i.e. 2 × layers × kv_heads × head_dim × ctx × parallel × 2 when K and V share a head width;
 *              each of the `parallel` sequences gets its own `ctx` tokens.
 *   compute  = one micro-batch (UBATCH_TOKENS) of f32 activations: logits (vocab) plus a few live hidden and
 *              feed-forward vectors; without flash attention also the f32 attention scores of that micro-batch
 *              against the whole cache (ubatch × ctx × parallel × heads × 4), which dominates at long contexts.
 *   overhead = FIXED_OVERHEAD_BYTES for the backend's scratch buffers, graphs and allocator slack.
 * The estimate is deliberately simple and on the high side (sliding-window and recurrent layers are counted as
 * full attention); it decides what to try, and the engine still reports a load failure if it was wrong.
 */
import type { GgufHeader } from "./gguf-header.ts";

/**
 * Quantizations from best to worst quality. Unsloth's dynamic "UD-" files rank just above the plain type of the
 * same name; names not in this table rank below all of them.
 */
export const QUANTIZATION_QUALITY: readonly string[] = [
  "F32",
  "BF16",
  "F16",
  "Q8_K_XL",
  "Q8_0",
  "Q6_K_XL",
  "Q6_K",
  "Q5_K_XL",
  "Q5_K_M",
  "Q5_K_S",
  "Q5_1",
  "Q5_0",
  "Q4_K_XL",
  "Q4_K_M",
  "Q4_K_S",
  "Q4_1",
  "MXFP4",
  "IQ4_NL",
  "IQ4_XS",
  "Q4_0",
  "Q3_K_XL",
  "Q3_K_L",
  "Q3_K_M",
  "IQ3_M",
  "IQ3_S",
  "Q3_K_S",
  "IQ3_XS",
  "IQ3_XXS",
  "Q2_K_XL",
  "Q2_K_L",
  "Q2_K",
  "IQ2_M",
  "IQ2_S",
  "Q2_K_S",
  "IQ2_XS",
  "IQ2_XXS",
  "IQ1_M",
  "IQ1_S",
  "TQ2_0",
  "TQ1_0",
];

/** BF16 and F16 are equally good: both keep 16 bits per weight. */
const EQUIVALENT: Readonly<Record<string, string>> = { F16: "BF16", MXFP4_MOE: "MXFP4" };

/** Rank of a quantization name: lower is better; unknown names get the worst rank. */
export function quantizationRank(name: string): number {
  const upper = name.trim().toUpperCase();
  const dynamic = upper.startsWith("UD-");
  const base = dynamic ? upper.slice(3) : upper;
  const index = QUANTIZATION_QUALITY.indexOf(EQUIVALENT[base] ?? base);
  if (index < 0) return QUANTIZATION_QUALITY.length * 2;
  return index * 2 - (dynamic ? 1 : 0);
}

/** Context is halved down to this many tokens at most (or the requested size, if smaller). */
export const MIN_CTX_SIZE = 4096;
/** llama.cpp's default micro-batch: the tokens one compute pass holds. */
export const UBATCH_TOKENS = 512;
/** Backend scratch, graph and allocator overhead on top of the computed buffers. */
export const FIXED_OVERHEAD_BYTES = 256 * 1024 * 1024;
/** Bytes per cached K or V element (f16 cache, llama.cpp's default). */
export const KV_BYTES_PER_ELEMENT = 2;

/** What the fit needs to know about a model's architecture. */
export interface ModelShape {
  blockCount: number;
  embeddingLength: number;
  headCount: number;
  /** One number, or one per layer. */
  headCountKv: number | readonly number[];
  keyLength: number;
  valueLength: number;
  vocabSize?: number;
  feedForwardLength?: number;
  /** Trained context length: a longer context is capped to it. */
  contextLength?: number;
}

export type FitCandidate =
  & {
    quantization: string;
    /** Bytes that must also fit next to the model (a vision projector, say). */
    extraBytes?: number;
  }
  & (
    /** The header of the model file; `weightsBytes` overrides its tensor bytes for split models. */
    | { header: Pick<GgufHeader, HeaderShapeKeys>; weightsBytes?: number }
    | { weightsBytes: number; shape: ModelShape }
  );

type HeaderShapeKeys =
  | "architecture"
  | "blockCount"
  | "embeddingLength"
  | "headCount"
  | "headCountKv"
  | "keyLength"
  | "valueLength"
  | "vocabSize"
  | "feedForwardLength"
  | "contextLength"
  | "tensorBytes";

export interface FitRequest {
  candidates: readonly FitCandidate[];
  /** Memory the model may use (free VRAM, or free RAM without a GPU). */
  freeBytes: number;
  ctxSize: number;
  parallel: number;
  /** Whether the engine uses flash attention (no f32 attention-score buffer). Default true. */
  flashAttention?: boolean;
  /** Lowest context to try. Default MIN_CTX_SIZE (or ctxSize if smaller). */
  minCtxSize?: number;
}

export interface MemoryBreakdown {
  weights: number;
  kvCache: number;
  compute: number;
  overhead: number;
  total: number;
}

export interface FitChoice {
  quantization: string;
  ctxSize: number;
  parallel: number;
  requiredBytes: number;
  breakdown: MemoryBreakdown;
  /** What was chosen and why, for logs and the worker's LoadedModel.note. */
  reason: string;
  /** True when parallel or context had to be lowered (or context capped). */
  reduced: boolean;
}

/** Nothing fits even at parallel 1 and the minimum context; `smallest` is the least demanding option. */
export class NothingFitsError extends Error {
  constructor(
    message: string,
    readonly freeBytes: number,
    readonly smallest: { quantization: string; ctxSize: number; parallel: number; breakdown: MemoryBreakdown },
  ) {
    super(message);
    this.name = "NothingFitsError";
  }
}

/** Shape from a GGUF header; throws when the header lacks what the estimate needs (not a language model). */
export function shapeFromHeader(header: Pick<GgufHeader, HeaderShapeKeys>, label = header.architecture): ModelShape {
  const { blockCount, embeddingLength, headCount } = header;
  if (!blockCount || !embeddingLength || !headCount) {
    throw new Error(`${label}: the GGUF header has no block_count/embedding_length/head_count (not a language model?)`);
  }
  const headDim = embeddingLength / headCount;
  return {
    blockCount,
    embeddingLength,
    headCount,
    headCountKv: header.headCountKv ?? headCount,
    keyLength: header.keyLength ?? headDim,
    valueLength: header.valueLength ?? headDim,
    vocabSize: header.vocabSize,
    feedForwardLength: header.feedForwardLength,
    contextLength: header.contextLength,
  };
}

/** Memory a model needs at a context and parallelism (see the module comment for the formula). */
export function estimateMemory(
  weightsBytes: number,
  shape: ModelShape,
  ctxSize: number,
  parallel: number,
  options: { flashAttention?: boolean; extraBytes?: number } = {},
): MemoryBreakdown {
  const tokens = ctxSize * parallel;
  const kvWidth = kvHeadsPerLayer(shape).reduce((sum, heads) => sum + heads * (shape.keyLength + shape.valueLength), 0);
  const kvCache = tokens * kvWidth * KV_BYTES_PER_ELEMENT;
  const ubatch = Math.min(UBATCH_TOKENS, tokens);
  const vocab = shape.vocabSize ?? 32_000;
  const ffn = shape.feedForwardLength ?? 4 * shape.embeddingLength;
  const activations = ubatch * 4 * (vocab + 4 * shape.embeddingLength + 3 * ffn);
  const attentionScores = options.flashAttention === false ? ubatch * tokens * shape.headCount * 4 : 0;
  const weights = weightsBytes + (options.extraBytes ?? 0);
  const compute = activations + attentionScores;
  const overhead = FIXED_OVERHEAD_BYTES;
  return { weights, kvCache, compute, overhead, total: weights + kvCache + compute + overhead };
}

function kvHeadsPerLayer(shape: ModelShape): number[] {
  const perLayer = shape.headCountKv;
  if (typeof perLayer === "number") return Array(shape.blockCount).fill(perLayer);
  return Array.from({ length: shape.blockCount }, (_, i) => perLayer[i] ?? shape.headCount);
}

interface ResolvedCandidate {
  quantization: string;
  weightsBytes: number;
  extraBytes: number;
  shape: ModelShape;
  rank: number;
}

function resolveCandidate(candidate: FitCandidate): ResolvedCandidate {
  const shape = "shape" in candidate ? candidate.shape : shapeFromHeader(candidate.header, candidate.quantization);
  const weightsBytes = "shape" in candidate
    ? candidate.weightsBytes
    : candidate.weightsBytes ?? candidate.header.tensorBytes;
  return {
    quantization: candidate.quantization,
    weightsBytes,
    extraBytes: candidate.extraBytes ?? 0,
    shape,
    rank: quantizationRank(candidate.quantization),
  };
}

/** The (ctx, parallel) settings to try, in order: as asked, fewer sequences, then half the context each step. */
function fallbackSteps(ctxSize: number, parallel: number, minCtx: number): Array<[number, number]> {
  const steps: Array<[number, number]> = [];
  for (let p = parallel; p >= 1; p--) steps.push([ctxSize, p]);
  for (let ctx = ctxSize; ctx > minCtx;) {
    ctx = Math.max(minCtx, Math.floor(ctx / 2));
    steps.push([ctx, 1]);
  }
  return steps;
}

/** Picks the best quantization, context and parallelism that fit in `freeBytes`; throws NothingFitsError. */
export function chooseFit(request: FitRequest): FitChoice {
  if (request.candidates.length === 0) throw new Error("chooseFit: no candidates");
  if (request.ctxSize < 1 || request.parallel < 1) throw new Error("chooseFit: ctxSize and parallel must be >= 1");
  const candidates = request.candidates.map(resolveCandidate);
  // Best first; equal quality (BF16/F16) prefers the smaller file.
  candidates.sort((a, b) => a.rank - b.rank || a.weightsBytes - b.weightsBytes);
  const flashAttention = request.flashAttention ?? true;
  // Every candidate is the same model, so the smallest trained context caps them all.
  const trained = Math.min(...candidates.map((c) => c.shape.contextLength ?? Infinity));
  const ctxSize = Math.min(request.ctxSize, trained);
  const minCtx = Math.min(request.minCtxSize ?? MIN_CTX_SIZE, ctxSize);
  const estimate = (c: ResolvedCandidate, ctx: number, p: number) =>
    estimateMemory(c.weightsBytes, c.shape, ctx, p, { flashAttention, extraBytes: c.extraBytes });

  for (const [ctx, parallel] of fallbackSteps(ctxSize, request.parallel, minCtx)) {
    const chosen = candidates.find((c) => estimate(c, ctx, parallel).total <= request.freeBytes);
    if (!chosen) continue;
    const breakdown = estimate(chosen, ctx, parallel);
    const reduced = ctx !== request.ctxSize || parallel !== request.parallel;
    const notes: string[] = [];
    if (ctxSize < request.ctxSize) notes.push(`context capped at the model's trained ${ctxSize} tokens`);
    if (parallel < request.parallel) notes.push(`parallel lowered from ${request.parallel} to ${parallel}`);
    if (ctx < ctxSize) notes.push(`context lowered from ${ctxSize} to ${ctx}`);
    const better = candidates.filter((c) => c.rank < chosen.rank);
    const betterText = better.length === 0
      ? ""
      : `; better ones need more: ${
        better.map((c) => `${c.quantization} ${gib(estimate(c, ctx, parallel).total)}`).join(", ")
      }`;
    const reason = `${notes.length ? notes.join(", ") + "; " : ""}${chosen.quantization} at ctx ${ctx} × ${parallel} ` +
      `needs ${describeBreakdown(breakdown)} of ${gib(request.freeBytes)} free${betterText}`;
    return {
      quantization: chosen.quantization,
      ctxSize: ctx,
      parallel,
      requiredBytes: breakdown.total,
      breakdown,
      reason,
      reduced,
    };
  }

  const smallest = candidates
    .map((c) => ({ c, breakdown: estimate(c, minCtx, 1) }))
    .sort((a, b) => a.breakdown.total - b.breakdown.total)[0];
  throw new NothingFitsError(
    `No quantization fits in ${gib(request.freeBytes)} free: the smallest, ${smallest.c.quantization} at ctx ` +
      `${minCtx} × 1, needs ${describeBreakdown(smallest.breakdown)}`,
    request.freeBytes,
    { quantization: smallest.c.quantization, ctxSize: minCtx, parallel: 1, breakdown: smallest.breakdown },
  );
}

function describeBreakdown(b: MemoryBreakdown): string {
  return `${gib(b.total)} (weights ${gib(b.weights)}, KV cache ${gib(b.kvCache)}, compute ${
    gib(b.compute + b.overhead)
  })`;
}

/** "12.3 GiB" (or MiB below 1 GiB), the unit memory is reported in. */
export function gib(bytes: number): string {
  const GiB = 1024 ** 3;
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}
