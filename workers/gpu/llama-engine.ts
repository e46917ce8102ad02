/**
 * The GPU worker's engine on node-llama-cpp: one model, one context whose sequences are the slots
 * (`policy.maxParallel`, each `policy.ctxSize` tokens: llama-slots.ts), and chat jobs run on those slots
 * with the low-level `sequence.evaluate` loop, so that this file decides prompt-cache reuse, stop sequences,
 * grammars and streaming itself.
 *
 * A job: the prompt is rendered with the model's Jinja template (prompt.ts) and tokenized; the free slot whose
 * evaluated tokens share the longest prefix with it is taken and only the rest is evaluated (`cachedTokens`);
 * generated text goes through the stop-sequence matcher and the `<think>`/`<tool_call>` parser (tool-call-parser.ts)
 * into events. Custom tools with a grammar (Responses API) are written inside it: from the start when the call is
 * forced (lark-to-gbnf.ts), from the moment the call names the tool when the model picks it (freeform-switch.ts).
 * A cancelled job (signal aborted) ends with an `error` event of code "cancelled" within a token or
 * two; its slot is freed and keeps its tokens for reuse.
 */
import {
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { Engine, EventSink } from "../common/engine.ts";
import type { ChatJob, LoadedModel, Policy, WorkerInfo, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { FinishReason } from "../../src/protocol/events.ts";
import { ChatPromptRenderer, type PromptSegment } from "./prompt.ts";
import { FORCED_CALL_CLOSE, FORCED_CALL_OPEN, type OutputConstraint, outputConstraint } from "./grammar.ts";
import { FreeformCallSwitch } from "./freeform-switch.ts";
import { forcedFreeformGrammar } from "./freeform-grammar.ts";
import { ModelOutputParser, type OutputEvent, StopSequenceMatcher } from "./tool-call-parser.ts";
import { resumedTokens, unseen } from "./continuation.ts";
import { evaluateAhead } from "./prefill.ts";
import { createSlots, fileQuantization, type Slot, takeSlot } from "./llama-slots.ts";
import { GrammarCache, triggersOf } from "./llama-grammars.ts";
import { StreamingDetokenizer } from "./detokenizer.ts";

export interface LlamaEngineOptions {
  modelPath: string;
  /** CPU threads for evaluation. Default: `defaultLlamaThreads(navigator.hardwareConcurrency)`. */
  threads?: number;
  /** Layers to offload to the GPU. Default "auto" (as many as fit). */
  gpuLayers?: number | "auto";
  log?: (message: string) => void;
  /** A backend already loaded with `loadLlamaBackend` (e.g. to measure free memory before choosing a model). */
  llama?: Llama;
}

/** Loads node-llama-cpp's backend (CUDA, Vulkan, Metal or CPU: the best prebuilt binary that works here). */
export async function loadLlamaBackend(
  options: { gpuLayers?: number | "auto"; log?: (message: string) => void },
): Promise<Llama> {
  return await getLlama({
    gpu: options.gpuLayers === 0 ? false : "auto",
    build: "never", // a worker never compiles llama.cpp (that needs GitHub and a toolchain)
    logLevel: LlamaLogLevel.warn,
    logger: (_level, message) => options.log?.(message.trim()),
  });
}

/**
 * The thread count a worker should pass: 1 on machines with 2 cores or fewer, where llama.cpp with all cores busy
 * was measured 25–300× slower (threads spin-wait against everything else); otherwise node-llama-cpp's default.
 */
export function defaultLlamaThreads(cpuCount: number): number | undefined {
  return cpuCount <= 2 ? 1 : undefined;
}

/** OpenAI-compatible servers sample at 0.8–1.0 when no temperature is given; llama.cpp's server uses 0.8. */
const DEFAULT_TEMPERATURE = 0.8;
interface Loaded {
  context: LlamaContext;
  slots: Slot[];
  ctxSize: number;
  info: LoadedModel;
}

export class LlamaEngine implements Engine {
  readonly kind = "gpu" as const;
  readonly resumesContinuations = true;
  private readonly options: LlamaEngineOptions;
  private llama?: Llama;
  private model?: LlamaModel;
  private renderer?: ChatPromptRenderer;
  private loaded?: Loaded;
  private hardware?: WorkerInfo["hardware"];
  private readonly running = new Set<Promise<void>>();
  private readonly grammars = new GrammarCache();
  private policyQueue: Promise<unknown> = Promise.resolve();
  private useCounter = 0;
  private tokensPerSecond?: number;

  constructor(options: LlamaEngineOptions) {
    this.options = options;
    this.llama = options.llama;
  }

  slots(): number {
    return this.loaded?.slots.length ?? 0;
  }

  applyPolicy(policy: Policy): Promise<LoadedModel | undefined> {
    // Serialized: a policy change waits for the previous one.
    const next = this.policyQueue.then(() => this.applyPolicyNow(policy));
    this.policyQueue = next.catch(() => undefined);
    return next;
  }

  private async applyPolicyNow(policy: Policy): Promise<LoadedModel | undefined> {
    if (policy.engine !== "llama") return undefined;
    const model = await this.loadModel();
    const current = this.loaded;
    if (current && current.info.ctxSize === policy.ctxSize && current.info.parallel === policy.maxParallel) {
      current.info = { ...current.info, policyVersion: policy.version, model: policy.model.name };
      return current.info;
    }
    // The context is replaced only once running jobs have finished with it.
    this.loaded = undefined;
    await Promise.allSettled([...this.running]);
    if (current) await current.context.dispose();
    const { context, slots, ctxSize, parallel, notes } = await createSlots(model, policy, {
      threads: this.options.threads ?? defaultLlamaThreads(navigator.hardwareConcurrency),
      log: this.options.log,
    });
    const info: LoadedModel = {
      policyVersion: policy.version,
      model: policy.model.name,
      quantization: policy.model.quantization ?? fileQuantization(model),
      ctxSize,
      parallel,
      ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
    };
    this.loaded = { context, slots, ctxSize, info };
    return info;
  }

  private async loadModel(): Promise<LlamaModel> {
    if (this.model) return this.model;
    const log = this.options.log;
    this.llama ??= await loadLlamaBackend({ gpuLayers: this.options.gpuLayers, log });
    const llama = this.llama;
    this.model = await llama.loadModel({ modelPath: this.options.modelPath, gpuLayers: this.options.gpuLayers });
    const template = this.model.fileInfo.metadata.tokenizer?.chat_template;
    this.renderer = new ChatPromptRenderer(typeof template === "string" ? template : CHATML_FALLBACK, {
      bos: this.model.tokens.bosString ?? undefined,
      eos: this.model.tokens.eosString ?? undefined,
    });
    const [gpus, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()]);
    this.hardware = {
      backend: llama.gpu === false ? "cpu" : llama.gpu,
      ...(gpus.length > 0 ? { gpu: gpus.join(", ").slice(0, 200) } : {}),
      ...(vram.total > 0 ? { vramBytes: vram.total } : {}),
    };
    return this.model;
  }

  run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") return Promise.reject(new Error("the llama engine runs chat jobs only"));
    const done = this.runChat(job, sink, signal);
    const tracked = done.catch(() => undefined).finally(() => this.running.delete(tracked));
    this.running.add(tracked);
    return done;
  }

  private async runChat(job: ChatJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    const { model, renderer, loaded } = this;
    if (!model || !renderer || !loaded) throw new Error("no model loaded: applyPolicy first");
    const request = job.request;
    let constraint: OutputConstraint | undefined;
    try {
      constraint = outputConstraint(request.tools, request.toolChoice, request.responseFormat);
    } catch (error) {
      sink.emit({ type: "error", code: "invalid_request", message: (error as Error).message, retryable: false });
      return;
    }
    const continuation = job.continuation;
    if (continuation && constraint) {
      // The grammar's state after the output so far cannot be rebuilt here.
      sink.emit({
        type: "error",
        code: "continuation_unsupported",
        message: "a grammar-constrained answer (JSON schema, forced tool call) cannot be resumed on another worker",
        retryable: false,
      });
      return;
    }
    const prompt = renderer.render(request, { offerTools: request.toolChoice !== "none" });
    const segments: PromptSegment[] = [...prompt.segments];
    // A constrained answer starts after any reasoning the template opened, and a forced call after its opener.
    if (constraint && prompt.endsInsideThink) segments.push({ text: "\n</think>\n\n", special: true });
    if (constraint?.kind === "tool_call") segments.push({ text: FORCED_CALL_OPEN, special: true });
    // A continuation evaluates the output so far after the prompt, exactly as the lost worker had it in context.
    const resumed = continuation ? resumedTokens(model, continuation, prompt.endsInsideThink) : [];
    const tokens = [...this.tokenize(model, segments), ...resumed];
    const start = {
      type: "start",
      model: loaded.info.model,
      promptTokens: tokens.length,
      ...(continuation ? { continued: true } : {}),
    } as const;
    if (job.mode === "count_tokens") {
      sink.emit(start);
      sink.emit({ type: "done", finishReason: "stop" });
      return;
    }
    if (tokens.length >= loaded.ctxSize) {
      sink.emit({
        type: "error",
        code: "context_length_exceeded",
        // Anthropic's wording, which Claude Code parses (N and M) to compact the conversation: docs/claude-code.md.
        message: `prompt is too long: ${tokens.length} tokens > ${loaded.ctxSize - 1} maximum`,
        retryable: false,
      });
      return;
    }
    const grammar = constraint
      ? await this.grammars.get(
        this.llama!,
        constraint,
        forcedFreeformGrammar(request, this.options.log),
        this.options.log,
      )
      : undefined;
    const slot = takeSlot(loaded.slots, tokens, request.conversationKey, ++this.useCounter);
    try {
      const sequence = slot.sequence;
      const reusable = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
      if (reusable < sequence.nextTokenIndex) {
        await sequence.eraseContextTokenRanges([{ start: reusable, end: sequence.nextTokenIndex }]);
      }
      // Erasing may keep less than asked (models that cannot trim their state), so trust the sequence.
      const cachedTokens = sequence.nextTokenIndex;
      slot.conversationKey = request.conversationKey;
      sink.emit(start);
      if (signal.aborted) return emitCancelled(sink);

      let idCounter = 0;
      const callIdPrefix = `call_${job.id.slice(-8)}_${crypto.randomUUID().slice(0, 8)}`;
      const parser = new ModelOutputParser({
        startInReasoning: prompt.endsInsideThink && !constraint,
        parseToolCalls: request.toolChoice !== "none" && request.tools.length > 0,
        newToolCallId: () => `${callIdPrefix}_${idCounter++}`,
      });
      const emitAll = (events: OutputEvent[]) => events.forEach((event) => sink.emit(event));
      if (constraint?.kind === "tool_call") emitAll(parser.push(FORCED_CALL_OPEN));
      const grammarStops = grammar ? triggersOf(grammar) : [];
      const stops = new StopSequenceMatcher([...request.stop, ...grammarStops]);
      const alreadyGenerated = continuation?.completionTokens ?? 0;
      const requested = (request.maxTokens ?? Infinity) - alreadyGenerated;
      const maxTokens = Math.min(requested, loaded.ctxSize - tokens.length);
      // Stopping at the context's end rather than at the caller's max_tokens is reported as such (Anthropic's
      // model_context_window_exceeded): Claude Code asks for 32k-64k tokens whatever the context.
      const contextFull = maxTokens < requested;
      const temperature = request.temperature ?? DEFAULT_TEMPERATURE;
      const detokenizer = new StreamingDetokenizer(model);
      if (continuation) {
        // Replays the output so far through the same detokenizer, stop matcher and parser, so their state is the
        // lost worker's; only what the caller has not seen yet (text those held back) goes out.
        const replayed: OutputEvent[] = [];
        for (const token of resumed) replayed.push(...parser.push(stops.push(detokenizer.push(token)).text));
        emitAll(unseen(replayed, continuation));
        if (maxTokens <= 0) {
          sink.emit({ type: "usage", usage: { promptTokens: tokens.length, completionTokens: 0, cachedTokens } });
          sink.emit({ type: "done", finishReason: "length" });
          return;
        }
      }
      /** Tokens generated but not yet attached to an output event (see `tokens` in events.ts). */
      let unattached: Token[] = [];
      const emitWithTokens = (events: OutputEvent[]) => {
        for (const event of events) {
          if ((event.type === "text" || event.type === "reasoning") && unattached.length > 0) {
            sink.emit({ ...event, tokens: unattached });
            unattached = [];
          } else sink.emit(event);
        }
      };

      let completionTokens = 0;
      /** Tokens that produced reasoning text (OpenAI's `reasoning_tokens`). */
      let reasoningTokens = 0;
      let generationStart = 0;
      /** Set when the loop stops the model; left undefined when the model ended by itself. */
      let finish: FinishReason | undefined;
      let stopSequence: string | undefined;
      const sampling = (grammar: LlamaGrammar | undefined) => ({
        temperature,
        ...(request.topK !== undefined ? { topK: request.topK } : {}),
        ...(request.topP !== undefined ? { topP: request.topP } : {}),
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
        ...(grammar ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model, grammar }) } : {}),
      });
      // All but the last token now, reporting progress (prefill.ts); the last one is evaluated as generation starts.
      const evaluated = await evaluateAhead(sequence, tokens, {
        from: cachedTokens,
        batch: loaded.context.batchSize,
        stepFrom: continuation && temperature === 0 ? tokens.length - resumed.length : tokens.length,
        signal,
        progress: (done) =>
          sink.emit({ type: "progress", phase: "prefill", promptTokensDone: done, promptTokens: tokens.length }),
      });
      if (signal.aborted) return emitCancelled(sink);
      // A call of a custom tool the model chose itself continues under the tool's grammar (freeform-switch.ts).
      const freeformSwitch = FreeformCallSwitch.for(request.tools, request.toolChoice);
      let switched = false;
      let evaluation = sequence.evaluate(tokens.slice(evaluated), sampling(grammar));
      generation: for (;;) {
        for await (const token of evaluation) {
          if (completionTokens === 0) {
            generationStart = performance.now();
            // Hybrid/recurrent models can reuse a prefix only from a checkpoint: take one at the end of the prompt.
            if (sequence.needsCheckpoints) await sequence.takeCheckpoint();
          }
          completionTokens++;
          unattached.push(token);
          sink.emit({ type: "progress", phase: "generate", completionTokens });
          const { text, stop } = stops.push(detokenizer.push(token));
          const produced = parser.push(text);
          if (produced.some((event) => event.type === "reasoning")) reasoningTokens++;
          emitWithTokens(produced);
          if (stop !== undefined) {
            // A grammar's own end marker means the constrained value is complete: a plain stop.
            if (request.stop.includes(stop)) [finish, stopSequence] = ["stop_sequence", stop];
            else finish = "stop";
            break generation;
          }
          if (signal.aborted) break generation;
          if (completionTokens >= maxTokens) {
            finish = "length";
            emitWithTokens(parser.push(stops.push(detokenizer.flush()).text + stops.flush()));
            break generation;
          }
          const rest = switched ? undefined : freeformSwitch?.observe(text, produced);
          const restGrammar = rest
            ? await this.llama!.createGrammar({ grammar: rest }).catch(() => undefined)
            : undefined;
          if (restGrammar) {
            // The sampled token is not evaluated yet: the next evaluation starts with it.
            switched = true;
            evaluation = sequence.evaluate([token], sampling(restGrammar));
            continue generation;
          }
        }
        break; // the model ended its answer
      }
      if (signal.aborted) return emitCancelled(sink);
      if (finish === undefined) emitAll(parser.push(stops.push(detokenizer.flush()).text + stops.flush()));
      if ((constraint?.kind === "tool_call" || switched) && finish !== "length") {
        emitAll(parser.push(FORCED_CALL_CLOSE));
      }
      emitAll(parser.end());
      finish ??= "stop";
      if (finish === "stop" && parser.toolCallCount > 0) finish = "tool_calls";
      this.recordSpeed(completionTokens, generationStart);
      const usage = { promptTokens: tokens.length, completionTokens, cachedTokens };
      sink.emit({ type: "usage", usage: reasoningTokens > 0 ? { ...usage, reasoningTokens } : usage });
      sink.emit({
        type: "done",
        finishReason: finish,
        ...(stopSequence !== undefined ? { stopSequence } : {}),
        ...(finish === "length" && contextFull ? { contextFull: true } : {}),
      });
    } catch (error) {
      // The sequence may hold a half-evaluated batch: start that slot afresh next time.
      slot.conversationKey = undefined;
      await slot.sequence.clearHistory().catch(() => undefined);
      throw error;
    } finally {
      slot.busy = false;
    }
  }

  /** Template text is tokenized with control tokens parsed; message text never is (no injected `<|im_end|>`). */
  private tokenize(model: LlamaModel, segments: readonly PromptSegment[]): Token[] {
    const tokens = segments.flatMap((segment, index) =>
      model.tokenize(segment.text, segment.special, index > 0 ? "trimLeadingSpace" : undefined)
    );
    const bos = model.tokens.bos;
    if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  private recordSpeed(tokens: number, since: number): void {
    const seconds = (performance.now() - since) / 1000;
    if (tokens < 8 || seconds <= 0) return;
    const speed = tokens / seconds;
    this.tokensPerSecond = this.tokensPerSecond === undefined ? speed : 0.8 * this.tokensPerSecond + 0.2 * speed;
  }

  describe(): Partial<WorkerInfo> {
    const keys = new Set<string>();
    for (const slot of this.loaded?.slots ?? []) {
      if (!slot.busy && slot.conversationKey !== undefined) keys.add(slot.conversationKey);
    }
    return {
      ...(this.hardware ? { hardware: this.hardware } : {}),
      cachedConversations: [...keys].slice(0, 256),
      ...(this.tokensPerSecond !== undefined ? { tokensPerSecond: Math.round(this.tokensPerSecond * 10) / 10 } : {}),
    };
  }

  async dispose(): Promise<void> {
    await Promise.allSettled([...this.running]);
    await this.loaded?.context.dispose();
    await this.model?.dispose();
    // A backend passed in is shared (several models on one worker): its owner disposes it.
    if (!this.options.llama) await this.llama?.dispose();
    this.loaded = undefined;
    this.model = undefined;
    this.llama = undefined;
  }
}

function emitCancelled(sink: EventSink): void {
  sink.emit({ type: "error", code: "cancelled", message: "the job was cancelled", retryable: false });
}

/** Used only for a GGUF without a chat template. */
const CHATML_FALLBACK = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + " +
  "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
