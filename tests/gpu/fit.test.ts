/**
 * Quantization fit on real GGUF headers: full-size-looking Llama-3-8B-shaped skeletons (tests/fixtures) at five
 * quantizations, read with workers/gpu/gguf-header.ts, against memory budgets that force each decision: the
 * best quantization, fewer parallel sequences, a shorter context, or a clear "nothing fits". Also the free-memory
 * probe on the real llama.cpp backend (CPU here; the GPU branch needs a GPU host).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir, totalmem } from "node:os";
import { getLlama } from "node-llama-cpp";
import { join } from "node:path";
import {
  chooseFit,
  estimateMemory,
  type FitCandidate,
  MIN_CTX_SIZE,
  type ModelShape,
  NothingFitsError,
  QUANTIZATION_QUALITY,
  quantizationRank,
  shapeFromHeader,
} from "../../workers/gpu/fit.ts";
import { type GgufHeader, readGgufHeader } from "../../workers/gpu/gguf-header.ts";
import { measureFreeMemory } from "../../workers/gpu/memory.ts";
import { writeSkeletonGguf } from "../fixtures/tiny-gguf.ts";

const GiB = 1024 ** 3;
/** Llama-3-8B: 32 layers × 8 KV heads × (128 + 128) × 2 bytes = 128 KiB of f16 cache per token. */
const KV_BYTES_PER_TOKEN = 32 * 8 * 256 * 2;

const QUANTS = [
  ["Q4_K_M", "Q4_K"],
  ["Q5_K_M", "Q5_K"],
  ["Q6_K", "Q6_K"],
  ["Q8_0", "Q8_0"],
  ["F16", "F16"],
] as const;

/** Headers of the same 8B-shaped model at five quantizations, read once for all tests. */
async function loadHeaders(ctx = 131072): Promise<Map<string, GgufHeader>> {
  const dir = await mkdtemp(join(tmpdir(), "auxot-fit-"));
  try {
    const headers = new Map<string, GgufHeader>();
    for (const [name, tensorType] of QUANTS) {
      const { path } = await writeSkeletonGguf(join(dir, `${name}.gguf`), { tensorType, ctx, vocabSize: 32000 });
      headers.set(name, await readGgufHeader(path));
    }
    return headers;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const headers = await loadHeaders();
const candidates: FitCandidate[] = [...headers].map(([quantization, header]) => ({ quantization, header }));
const need = (quantization: string, ctx: number, parallel: number) => {
  const header = headers.get(quantization)!;
  return estimateMemory(header.tensorBytes, shapeFromHeader(header), ctx, parallel).total;
};

Deno.test("KV cache: 128 KiB per token for a Llama-3-8B shape, times context and parallel", () => {
  const header = headers.get("Q4_K_M")!;
  const shape = shapeFromHeader(header);
  const one = estimateMemory(header.tensorBytes, shape, 8192, 1);
  assert.equal(one.kvCache, 8192 * KV_BYTES_PER_TOKEN);
  assert.equal(one.kvCache, 1 * GiB);
  assert.equal(one.weights, header.tensorBytes);
  assert.equal(one.total, one.weights + one.kvCache + one.compute + one.overhead);
  const two = estimateMemory(header.tensorBytes, shape, 8192, 2);
  assert.equal(two.kvCache, 2 * GiB);
  // Without flash attention the f32 scores of a 512-token micro-batch against the whole cache are added.
  const noFlash = estimateMemory(header.tensorBytes, shape, 8192, 2, { flashAttention: false });
  assert.equal(noFlash.compute - two.compute, 512 * 8192 * 2 * 32 * 4);
});

Deno.test("quality ranking follows the documented table", () => {
  const ordered = [
    "F32",
    "BF16",
    "UD-Q8_K_XL",
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q4_K_M",
    "Q4_K_S",
    "IQ4_XS",
    "Q3_K_M",
    "Q3_K_S",
    "Q2_K",
    "IQ1_S",
    "SOMETHING_NEW",
  ];
  const ranks = ordered.map(quantizationRank);
  assert.deepEqual([...ranks].sort((a, b) => a - b), ranks);
  assert.equal(new Set(ranks).size, ranks.length);
  assert.equal(quantizationRank("F16"), quantizationRank("bf16"));
  assert.ok(quantizationRank("UD-Q4_K_S") < quantizationRank("Q4_K_S"));
  assert.ok(quantizationRank("UD-Q4_K_S") > quantizationRank("Q4_K_M"));
  assert.equal(QUANTIZATION_QUALITY[0], "F32");
});

Deno.test("plenty of memory: the best quantization at the context and parallelism asked for", () => {
  const fit = chooseFit({ candidates, freeBytes: 80 * GiB, ctxSize: 32768, parallel: 2 });
  assert.equal(fit.quantization, "F16");
  assert.equal(fit.ctxSize, 32768);
  assert.equal(fit.parallel, 2);
  assert.equal(fit.reduced, false);
  assert.equal(fit.breakdown.kvCache, 32768 * 2 * KV_BYTES_PER_TOKEN);
  assert.equal(fit.requiredBytes, need("F16", 32768, 2));
  assert.match(
    fit.reason,
    /^F16 at ctx 32768 × 2 needs 2\d\.\d GiB \(weights 13\.\d GiB, KV cache 8\.0 GiB, compute 435 MiB\) of 80\.0 GiB free$/,
  );
});

Deno.test("the highest quality that fits is chosen, and the reason names what did not fit", () => {
  const budget = need("Q8_0", 32768, 2) + 1;
  assert.ok(budget < need("F16", 32768, 2));
  const fit = chooseFit({ candidates, freeBytes: budget, ctxSize: 32768, parallel: 2 });
  assert.equal(fit.quantization, "Q8_0");
  assert.equal(fit.reduced, false);
  assert.match(fit.reason, /^Q8_0 at ctx 32768 × 2 needs .* free; better ones need more: F16 2\d\.\d GiB$/);
  // Exactly the requirement is enough.
  assert.equal(
    chooseFit({ candidates, freeBytes: need("Q6_K", 32768, 2), ctxSize: 32768, parallel: 2 }).quantization,
    "Q6_K",
  );
});

Deno.test("when nothing fits as asked, parallelism is lowered first", () => {
  const budget = need("Q4_K_M", 131072, 1) + 100 * 1024 * 1024;
  assert.ok(budget < need("Q4_K_M", 131072, 2) && budget < need("Q5_K_M", 131072, 1));
  const fit = chooseFit({ candidates, freeBytes: budget, ctxSize: 131072, parallel: 2 });
  assert.deepEqual([fit.quantization, fit.ctxSize, fit.parallel, fit.reduced], ["Q4_K_M", 131072, 1, true]);
  assert.match(fit.reason, /^parallel lowered from 2 to 1; Q4_K_M at ctx 131072 × 1 needs /);
});

Deno.test("then the context is halved", () => {
  const budget = need("Q4_K_M", 16384, 1) + 1;
  const fit = chooseFit({ candidates, freeBytes: budget, ctxSize: 65536, parallel: 2 });
  assert.deepEqual([fit.quantization, fit.ctxSize, fit.parallel], ["Q4_K_M", 16384, 1]);
  assert.match(
    fit.reason,
    /^parallel lowered from 2 to 1, context lowered from 65536 to 16384; Q4_K_M at ctx 16384 × 1/,
  );
  // Once reduced, the longest context that fits wins over quality: Q6_K would fit at 8192, Q4_K_M at 16384.
  const tight = chooseFit({ candidates, freeBytes: need("Q6_K", 8192, 1), ctxSize: 65536, parallel: 1 });
  assert.deepEqual([tight.quantization, tight.ctxSize], ["Q4_K_M", 16384]);
  assert.match(tight.reason, /better ones need more: F16 .*, Q8_0 .*, Q6_K .*, Q5_K_M /);
});

Deno.test("nothing fits: a clear error naming the smallest requirement", () => {
  const weights = headers.get("Q4_K_M")!.tensorBytes;
  assert.throws(() => chooseFit({ candidates, freeBytes: weights, ctxSize: 131072, parallel: 2 }), (err: unknown) => {
    assert.ok(err instanceof NothingFitsError);
    assert.equal(err.smallest.quantization, "Q4_K_M");
    assert.equal(err.smallest.ctxSize, MIN_CTX_SIZE);
    assert.equal(err.smallest.parallel, 1);
    assert.equal(err.smallest.breakdown.total, need("Q4_K_M", MIN_CTX_SIZE, 1));
    assert.match(
      err.message,
      /^No quantization fits in 3\.8 GiB free: the smallest, Q4_K_M at ctx 4096 × 1, needs 4\.\d GiB \(weights 3\.8 GiB, KV cache 512 MiB, compute 435 MiB\)$/,
    );
    return true;
  });
});

Deno.test("the context is capped at the model's trained length", async () => {
  const short = await loadHeaders(8192);
  const fit = chooseFit({
    candidates: [{ quantization: "Q4_K_M", header: short.get("Q4_K_M")! }],
    freeBytes: 64 * GiB,
    ctxSize: 131072,
    parallel: 2,
  });
  assert.deepEqual([fit.ctxSize, fit.parallel, fit.reduced], [8192, 2, true]);
  assert.match(fit.reason, /^context capped at the model's trained 8192 tokens; Q4_K_M at ctx 8192 × 2/);
});

Deno.test("shapes without a header: per-layer KV heads, distinct key/value widths, extra bytes", () => {
  // DeepSeek-style compressed attention cache: one KV "head" of 576 (key) + 512 (value) per layer.
  const mla: ModelShape = {
    blockCount: 61,
    embeddingLength: 7168,
    headCount: 128,
    headCountKv: 1,
    keyLength: 576,
    valueLength: 512,
    vocabSize: 129280,
  };
  assert.equal(estimateMemory(0, mla, 1000, 1).kvCache, 1000 * 61 * 1088 * 2);
  // Layers without attention (a hybrid model) have no KV heads.
  const hybrid: ModelShape = {
    blockCount: 4,
    embeddingLength: 1024,
    headCount: 8,
    headCountKv: [0, 0, 0, 4],
    keyLength: 128,
    valueLength: 128,
  };
  assert.equal(estimateMemory(0, hybrid, 100, 3).kvCache, 300 * 4 * 256 * 2);
  const withProjector = chooseFit({
    candidates: [{ quantization: "Q4_K_S", weightsBytes: 2 * GiB, shape: hybrid, extraBytes: 0.5 * GiB }],
    freeBytes: 8 * GiB,
    ctxSize: 2048,
    parallel: 1,
  });
  assert.equal(withProjector.breakdown.weights, 2.5 * GiB);
  // A requested context below the minimum is kept, never raised.
  assert.throws(
    () =>
      chooseFit({
        candidates: [{ quantization: "Q4_K_S", weightsBytes: 2 * GiB, shape: hybrid }],
        freeBytes: 2 * GiB,
        ctxSize: 2048,
        parallel: 1,
      }),
    (err: unknown) => err instanceof NothingFitsError && err.smallest.ctxSize === 2048,
  );
});

Deno.test("a header that is not a language model is refused with a clear message", () => {
  const projector = { ...headers.get("Q4_K_M")!, architecture: "clip", blockCount: undefined };
  assert.throws(
    () =>
      chooseFit({
        candidates: [{ quantization: "F16", header: projector }],
        freeBytes: GiB,
        ctxSize: 4096,
        parallel: 1,
      }),
    /F16: the GGUF header has no block_count/,
  );
});

Deno.test("measureFreeMemory: free RAM on a CPU-only llama.cpp backend", async () => {
  const llama = await getLlama({ gpu: false });
  try {
    const memory = await measureFreeMemory(llama);
    assert.equal(memory.backend, "cpu");
    assert.equal(memory.unified, false);
    assert.equal(memory.totalBytes, totalmem());
    assert.ok(memory.freeBytes > 0 && memory.freeBytes <= memory.totalBytes);
  } finally {
    await llama.dispose();
  }
});
