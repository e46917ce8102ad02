/**
 * Embeddings on node-llama-cpp: one embedding context per embedding model (llama.cpp's pooling as the GGUF sets
 * it), and an embedding job — one request's whole batch of inputs — embedded input by input on it. Jobs that
 * arrive together queue on the context's lock (node-llama-cpp evaluates one input at a time per context), so a
 * worker works through its claimed batches back to back. Vectors are L2-normalised (as OpenAI's are) and cut to
 * `dimensions` only for Matryoshka models (the policy's `minDimensions`); each goes out as its own `embedding`
 * event in base64 float32, then `usage` (tokens embedded) and `done`.
 */
import type { Llama, LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import type { EventSink } from "../common/engine.ts";
import type { EmbeddingJob, PolicyModel } from "../../src/protocol/worker-protocol.ts";
import { encodeFloat32 } from "../../src/api/embeddings/embeddings.ts";

export interface EmbeddingEngineOptions {
  llama: Llama;
  modelPath: string;
  threads?: number;
  gpuLayers?: number | "auto";
}

export interface LoadedEmbeddingModel {
  ctxSize: number;
  dimensions: number;
}

export class EmbeddingEngine {
  #model?: LlamaModel;
  #context?: LlamaEmbeddingContext;
  #policyModel?: PolicyModel;
  #ctxSize = 0;
  #running = 0;

  constructor(readonly options: EmbeddingEngineOptions) {}

  get running(): number {
    return this.#running;
  }

  /** Loads the model and its embedding context (once); `ctxSize` caps the longest input, in tokens. */
  async load(policyModel: PolicyModel): Promise<LoadedEmbeddingModel> {
    this.#policyModel = policyModel;
    this.#model ??= await this.options.llama.loadModel({
      modelPath: this.options.modelPath,
      ...(this.options.gpuLayers !== undefined ? { gpuLayers: this.options.gpuLayers } : {}),
    });
    const model = this.#model;
    const trained = model.trainContextSize > 0 ? model.trainContextSize : 2048;
    const ctxSize = Math.min(policyModel.ctxSize ?? trained, trained);
    this.#context ??= await model.createEmbeddingContext({
      contextSize: ctxSize,
      batchSize: ctxSize,
      ...(this.options.threads ? { threads: this.options.threads } : {}),
    });
    this.#ctxSize = ctxSize;
    return { ctxSize, dimensions: model.embeddingVectorSize };
  }

  async run(job: EmbeddingJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    const model = this.#model, context = this.#context, policyModel = this.#policyModel;
    if (!model || !context || !policyModel) throw new Error("no embedding model loaded");
    this.#running++;
    try {
      const native = model.embeddingVectorSize;
      const refusal = dimensionsRefusal(policyModel, native, job.dimensions);
      if (refusal) return invalid(sink, refusal);
      const vocabulary = vocabularySize(model);
      const inputs: (string | Token[])[] = [];
      let tokens = 0;
      for (const [index, input] of job.input.entries()) {
        if (typeof input !== "string" && vocabulary !== undefined && input.some((t) => t >= vocabulary)) {
          return invalid(sink, `input ${index} holds a token id outside this model's vocabulary (${vocabulary}).`);
        }
        const resolved = typeof input === "string" ? input : input as Token[];
        const length = context.calculateInputLength(resolved);
        if (length >= this.#ctxSize) {
          const most = this.#ctxSize - 1;
          return invalid(
            sink,
            `input ${index} has ${length} tokens; this model embeds at most ${most}.`,
            "context_length_exceeded",
          );
        }
        tokens += length;
        inputs.push(resolved);
      }
      sink.emit({ type: "start", model: policyModel.name, promptTokens: tokens });
      for (const [index, input] of inputs.entries()) {
        if (signal.aborted) {
          sink.emit({ type: "error", code: "cancelled", message: "the job was cancelled", retryable: false });
          return;
        }
        const embedding = await context.getEmbeddingFor(input);
        const vector = normalise(embedding.vector, job.dimensions ?? native);
        sink.emit({ type: "embedding", index, base64: encodeFloat32(vector) });
      }
      sink.emit({ type: "usage", usage: { promptTokens: tokens, completionTokens: 0, cachedTokens: 0 } });
      sink.emit({ type: "done", finishReason: "stop" });
    } finally {
      this.#running--;
    }
  }

  async dispose(): Promise<void> {
    await this.#context?.dispose();
    await this.#model?.dispose();
    this.#context = undefined;
    this.#model = undefined;
  }
}

/** Why `dimensions` cannot be served, or undefined when it can (equal to the model's, or a Matryoshka cut). */
export function dimensionsRefusal(model: PolicyModel, native: number, wanted: number | undefined): string | undefined {
  if (wanted === undefined || wanted === native) return undefined;
  if (wanted > native) return `${model.name} gives vectors of ${native} dimensions; ${wanted} is more.`;
  if (model.minDimensions === undefined) {
    return `${model.name} gives vectors of ${native} dimensions only (it was not trained for shorter ones).`;
  }
  if (wanted < model.minDimensions) {
    return `${model.name} gives vectors of ${model.minDimensions} to ${native} dimensions, not ${wanted}.`;
  }
  return undefined;
}

/** The first `dimensions` values, scaled to unit length (a zero vector stays zero). */
export function normalise(vector: readonly number[], dimensions: number): Float32Array {
  const out = Float32Array.from(vector.slice(0, dimensions));
  let sum = 0;
  for (const v of out) sum += v * v;
  const norm = Math.sqrt(sum);
  if (norm > 0) { for (let i = 0; i < out.length; i++) out[i] /= norm; }
  return out;
}

function vocabularySize(model: LlamaModel): number | undefined {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return tokens ? tokens.length : undefined;
}

function invalid(sink: EventSink, message: string, code = "invalid_request"): void {
  sink.emit({ type: "error", code, message, retryable: false });
}
