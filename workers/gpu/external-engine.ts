/**
 * External engine mode (`AUXOT_LLAMA_URL` / `--llama-url`): the worker forwards each job to an existing
 * OpenAI-compatible server (llama-server, vLLM, Ollama, SGLang) and relays its answer as job events. The
 * policy's model is managed by that server; the worker reports what it serves and relays every option it can.
 */
import type { ChatMessage, ChatRequest, ContentPart } from "../../src/protocol/chat.ts";
import type { FinishReason, JobEvent } from "../../src/protocol/events.ts";
import { callerStreams, type LoadedModel, type Policy, type WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Engine, EventSink } from "../common/engine.ts";
import { SseDataLines } from "../common/sse-data.ts";
import { type ImageFetchOptions, inlineImages } from "./image-inline.ts";

export interface ExternalEngineOptions {
  /** Base URL of the server's OpenAI API, e.g. http://127.0.0.1:8081/v1 (a trailing /v1 is added when missing). */
  url: string;
  /** Model name to send (default: the policy's model name). */
  model?: string;
  apiKey?: string;
  slots: number;
  fetch?: typeof fetch;
  /** How callers' http(s) images are fetched (by the worker, through the SSRF guard) before the engine sees them. */
  images?: ImageFetchOptions;
}

export class ExternalEngine implements Engine {
  readonly kind = "gpu" as const;
  readonly #base: string;
  readonly #fetch: typeof fetch;
  #model = "";

  constructor(readonly opts: ExternalEngineOptions) {
    const trimmed = opts.url.replace(/\/+$/, "");
    this.#base = /\/v\d+$/.test(trimmed) ? trimmed : `${trimmed}/v1`;
    this.#fetch = opts.fetch ?? fetch;
  }

  slots(): number {
    return this.opts.slots;
  }

  applyPolicy(policy: Policy): Promise<LoadedModel> {
    this.#model = this.opts.model ?? policy.model.name;
    return Promise.resolve({
      policyVersion: policy.version,
      model: policy.model.name,
      ctxSize: policy.ctxSize,
      parallel: this.opts.slots,
      note: `served by an external engine at ${new URL(this.#base).host}`,
    });
  }

  describe() {
    return { hardware: { backend: "external" } };
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }

  async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") throw new Error("a GPU worker runs chat jobs only");
    // The engine gets data: URLs only: it must not fetch callers' URLs from the GPU host's network.
    const request = hasImagesToFetch(job.request)
      ? await inlineImages(job.request, this.opts.images ?? {}, signal)
      : job.request; // what inlineImages would return, without its copies and awaits per message
    const completions = request.prompt !== undefined;
    // A caller that waits for the whole answer gets it in one piece from the engine too: one JSON body instead of a
    // chunk per token for the engine to write and this worker to read and parse. (No partial answer is lost by it:
    // such a caller sees nothing before the end, and a job that posted no output is re-run whole elsewhere.)
    const stream = callerStreams(job);
    const body = completions ? completionBody(request, this.#model, stream) : chatBody(request, this.#model, stream);
    if (job.mode === "count_tokens") {
      throw new Error(
        "count_tokens needs the model's tokenizer: run the worker with node-llama-cpp, not an external engine",
      );
    }
    const response = await this.#fetch(`${this.#base}/${completions ? "completions" : "chat/completions"}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
      },
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok || !response.body) {
      const text = (await response.text()).slice(0, 500);
      // 5xx and 429 from the engine are worth another worker's try; 4xx are the request's fault.
      const retryable = response.status >= 500 || response.status === 429;
      sink.emit({ type: "error", message: `engine answered ${response.status}: ${text}`, retryable });
      return;
    }
    sink.emit({ type: "start", model: this.#model });
    const relay = new ChunkRelay(sink);
    // A server that streams anyway (it ignored `stream: false`) is read as a stream.
    if (!stream && !response.headers.get("content-type")?.includes("text/event-stream")) {
      relay.chunk(asChunk(await response.json() as OpenAICompletion));
      relay.finish();
      return;
    }
    const lines = new SseDataLines();
    const reader = response.body.getReader();
    let finished = false;
    try {
      reading: for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          finished = true;
          break;
        }
        for (const data of lines.push(value)) {
          if (data === "[DONE]") break reading;
          relay.chunk(JSON.parse(data));
        }
      }
    } finally {
      // Stopped early ([DONE], a bad chunk): let go of the engine's stream, as leaving a for-await loop does.
      if (!finished) await reader.cancel().catch(() => {});
    }
    relay.finish();
  }
}

/** Turns OpenAI chat/completions chunks into job events. */
class ChunkRelay {
  #finish: FinishReason | undefined;
  #usage: JobEvent | undefined;
  #toolIds = new Map<number, string>();
  constructor(readonly sink: EventSink) {}

  chunk(chunk: OpenAIChunk): void {
    if (chunk.usage) {
      this.#usage = {
        type: "usage",
        usage: {
          promptTokens: chunk.usage.prompt_tokens ?? 0,
          completionTokens: chunk.usage.completion_tokens ?? 0,
          cachedTokens: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0,
        },
      };
    }
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const delta = choice.delta ?? {};
    const text = delta.content ?? choice.text;
    const reasoning = delta.reasoning_content ?? delta.reasoning;
    if (reasoning) this.sink.emit({ type: "reasoning", text: reasoning });
    if (text) this.sink.emit({ type: "text", text });
    for (const call of delta.tool_calls ?? []) {
      const index = call.index ?? 0;
      if (!this.#toolIds.has(index)) {
        const id = call.id ?? `call_${crypto.randomUUID().slice(0, 8)}`;
        this.#toolIds.set(index, id);
        this.sink.emit({ type: "tool_call", index, id, name: call.function?.name ?? "" });
      }
      if (call.function?.arguments) this.sink.emit({ type: "tool_args", index, delta: call.function.arguments });
    }
    if (choice.finish_reason) {
      this.#finish = choice.finish_reason === "length"
        ? "length"
        : choice.finish_reason === "tool_calls" || choice.finish_reason === "function_call"
        ? "tool_calls"
        : "stop";
    }
  }

  finish(): void {
    if (!this.#finish) {
      this.sink.emit({ type: "error", message: "the engine's stream ended without a finish reason", retryable: false });
      return;
    }
    if (this.#usage) this.sink.emit(this.#usage);
    this.sink.emit({ type: "done", finishReason: this.#finish });
  }
}

interface OpenAIChunk {
  choices?: {
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      reasoning?: string | null;
      tool_calls?: { index?: number; id?: string; function?: { name?: string; arguments?: string } }[];
    };
    text?: string;
    finish_reason?: string | null;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
}

/** A whole (non-streamed) chat or text completion, as the one chunk that carries all of it. */
interface OpenAICompletion {
  choices?: {
    message?: {
      content?: string | null;
      reasoning_content?: string | null;
      reasoning?: string | null;
      tool_calls?: { id?: string; function?: { name?: string; arguments?: string } }[];
    };
    text?: string;
    finish_reason?: string | null;
  }[];
  usage?: OpenAIChunk["usage"];
}

function asChunk(completion: OpenAICompletion): OpenAIChunk {
  const choice = completion.choices?.[0];
  if (!choice) return { usage: completion.usage };
  const message = choice.message ?? {};
  return {
    usage: completion.usage,
    choices: [{
      delta: {
        content: message.content,
        reasoning_content: message.reasoning_content,
        reasoning: message.reasoning,
        tool_calls: message.tool_calls?.map((call, index) => ({ index, id: call.id, function: call.function })),
      },
      text: choice.text,
      finish_reason: choice.finish_reason,
    }],
  };
}

/** Whether a message has an image that inlineImages fetches (one not given as a data: URL). */
function hasImagesToFetch(request: ChatRequest): boolean {
  return request.messages.some((message) =>
    "content" in message && Array.isArray(message.content) &&
    message.content.some((part) => part.type === "image" && !part.url.startsWith("data:"))
  );
}

function sampling(request: ChatRequest, stream: boolean) {
  return {
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : { stream: false }),
    ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.topP !== undefined ? { top_p: request.topP } : {}),
    ...(request.topK !== undefined ? { top_k: request.topK } : {}),
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
    ...(request.stop.length > 0 ? { stop: request.stop } : {}),
  };
}

function completionBody(request: ChatRequest, model: string, stream: boolean) {
  return { model, prompt: request.prompt, ...sampling(request, stream) };
}

/** The internal request as an OpenAI chat request (the inverse of src/api/openai/to-chat.ts). */
export function chatBody(request: ChatRequest, model: string, stream = true) {
  const format = request.responseFormat;
  return {
    model,
    messages: request.messages.map(toOpenAIMessage),
    ...sampling(request, stream),
    ...(request.tools.length > 0
      ? {
        tools: request.tools.map((t) => ({
          type: "function",
          function: { name: t.name, description: t.description, parameters: t.parameters },
        })),
        tool_choice: typeof request.toolChoice === "object"
          ? { type: "function", function: { name: request.toolChoice.name } }
          : request.toolChoice,
      }
      : {}),
    ...(format && format.type !== "text"
      ? {
        response_format: format.type === "json_object"
          ? { type: "json_object" }
          : { type: "json_schema", json_schema: { name: format.name ?? "response", schema: format.schema } },
      }
      : {}),
    ...(request.reasoning?.effort ? { reasoning_effort: request.reasoning.effort } : {}),
  };
}

function toOpenAIMessage(message: ChatMessage) {
  switch (message.role) {
    case "system":
      return { role: "system", content: textOf(message.content) };
    case "user":
      return { role: "user", content: message.content.map(toPart) };
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content: textOf(message.content) };
    case "assistant":
      return {
        role: "assistant",
        content: textOf(message.content) || null,
        ...(message.toolCalls?.length
          ? {
            tool_calls: message.toolCalls.map((c) => ({
              id: c.id,
              type: "function",
              function: { name: c.name, arguments: c.arguments },
            })),
          }
          : {}),
      };
  }
}

function textOf(parts: ContentPart[]): string {
  return parts.map((p) => p.type === "text" ? p.text : "").join("");
}

function toPart(part: ContentPart) {
  return part.type === "text" ? { type: "text", text: part.text } : { type: "image_url", image_url: { url: part.url } };
}
