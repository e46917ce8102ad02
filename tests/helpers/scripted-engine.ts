/**
 * A scripted engine for router tests: a real Engine behind the real worker loop and protocol, whose "model" obeys
 * instructions in the last user message instead of sampling. It records every job it receives so tests can assert
 * on what reached the worker. Instructions (one per message, first word decides):
 *   echo <text>          stream <text> back word by word, then stop
 *   tool <name> <json>   call tool <name> with <json> arguments, streamed in fragments
 *   think <a> | <b>      reasoning <a>, then answer <b>
 *   slow <ms> <text>     wait <ms> before answering (honours cancel)
 *   prefill <ms> <text>  a paced "prompt evaluation" of <ms>, reporting progress every 200 ms, then echo <text>
 *   hang                 never answer (until cancelled)
 *   words <n>            stream n words; stops with "length" when maxTokens < n
 *   fail <message>       end with a non-retryable error
 *   retry <message>      end with a retryable error (before any output)
 * Anything else is answered with "ok".
 * A continuation job (worker-protocol.ts) is resumed as a deterministic model would: the answer is produced again
 * and the text and reasoning the caller already has are skipped, so only what comes next is emitted.
 */
import type { JobEvent } from "../../src/protocol/events.ts";
import type { ChatJob, LoadedModel, Policy, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Engine, EventSink } from "../../workers/common/engine.ts";

export class ScriptedEngine implements Engine {
  readonly kind = "gpu" as const;
  readonly resumesContinuations = true;
  readonly received: ChatJob[] = [];
  readonly cancelled: string[] = [];
  #slots: number;
  #delayMs: number;

  constructor(options: { slots?: number; tokenDelayMs?: number } = {}) {
    this.#slots = options.slots ?? 2;
    this.#delayMs = options.tokenDelayMs ?? 0;
  }

  slots(): number {
    return this.#slots;
  }

  applyPolicy(policy: Policy): Promise<LoadedModel> {
    return Promise.resolve({
      policyVersion: policy.version,
      model: policy.model.name,
      ctxSize: policy.ctxSize,
      parallel: this.#slots,
    });
  }

  describe() {
    return { hardware: { backend: "scripted" } };
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }

  async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") throw new Error("the scripted engine only runs chat jobs");
    this.received.push(job);
    const request = job.request;
    const last = [...request.messages].reverse().find((m) => m.role === "user");
    const instruction = request.prompt ??
      (last?.content.map((p) => p.type === "text" ? p.text : "").join("") ?? "");
    const promptTokens = JSON.stringify(request.messages).length >> 2;
    const continuation = job.continuation;
    sink.emit({ type: "start", model: "scripted", promptTokens, ...(continuation ? { continued: true } : {}) });
    if (job.mode === "count_tokens") {
      sink.emit({ type: "done", finishReason: "stop" });
      return;
    }
    const [command, ...rest] = instruction.trim().split(" ");
    const arg = rest.join(" ");
    let completion = 0;
    // Output the caller already has (a continuation): skipped, as a model resuming after it would.
    let emitted = continuation?.completionTokens ?? 0;
    const skip = { text: continuation?.text.length ?? 0, reasoning: continuation?.reasoning.length ?? 0 };
    const emit = async (event: JobEvent) => {
      if (signal.aborted) throw new CancelledError();
      if (event.type === "text" || event.type === "reasoning") {
        const had = Math.min(skip[event.type], event.text.length);
        skip[event.type] -= had;
        if (had === event.text.length) return;
        event = { ...event, text: event.text.slice(had) };
      }
      if (this.#delayMs) await sleep(this.#delayMs, signal);
      sink.emit(event);
      sink.emit({ type: "progress", phase: "generate", completionTokens: ++emitted });
    };
    try {
      switch (command) {
        case "slow": {
          const [ms, ...words] = arg.split(" ");
          await sleep(Number(ms), signal);
          for (const word of words.join(" ").split(" ")) (await emit({ type: "text", text: word + " " }), completion++);
          break;
        }
        case "prefill": {
          const [ms, ...words] = arg.split(" ");
          const total = Number(ms);
          for (let done = 0; done < total; done += 200) {
            sink.emit({ type: "progress", phase: "prefill", promptTokensDone: done, promptTokens: total });
            await sleep(Math.min(200, total - done), signal);
          }
          for (const word of words.join(" ").split(/(?<= )/)) (await emit({ type: "text", text: word }), completion++);
          break;
        }
        case "hang":
          await sleep(1e9, signal);
          break;
        case "fail":
          sink.emit({ type: "error", message: arg || "scripted failure", retryable: false });
          return;
        case "retry":
          sink.emit({ type: "error", message: arg || "scripted retryable failure", retryable: true });
          return;
        case "tool": {
          const [name, ...json] = arg.split(" ");
          const args = json.join(" ") || "{}";
          await emit({ type: "tool_call", index: 0, id: `call_${job.id.slice(0, 8)}`, name });
          for (let i = 0; i < args.length; i += 4) {
            await emit({ type: "tool_args", index: 0, delta: args.slice(i, i + 4) });
          }
          sink.emit({ type: "usage", usage: { promptTokens, completionTokens: 5, cachedTokens: 0 } });
          sink.emit({ type: "done", finishReason: "tool_calls" });
          return;
        }
        case "think": {
          const [thought, answer] = arg.split("|").map((s) => s.trim());
          await emit({ type: "reasoning", text: thought });
          await emit({ type: "text", text: answer });
          completion = 2;
          break;
        }
        case "words": {
          const n = Number(arg);
          const limit = request.maxTokens ?? Infinity;
          for (let i = 0; i < Math.min(n, limit); i++) (await emit({ type: "text", text: `w${i} ` }), completion++);
          if (n > limit) {
            sink.emit({ type: "usage", usage: { promptTokens, completionTokens: completion, cachedTokens: 0 } });
            sink.emit({ type: "done", finishReason: "length" });
            return;
          }
          break;
        }
        case "echo":
          for (const word of arg.split(/(?<= )/)) (await emit({ type: "text", text: word }), completion++);
          break;
        default:
          await emit({ type: "text", text: "ok" });
          completion = 1;
      }
      // A continuation generated only what it emitted (the skipped part was the lost worker's).
      const generated = continuation ? emitted - continuation.completionTokens : completion;
      sink.emit({ type: "usage", usage: { promptTokens, completionTokens: generated, cachedTokens: 0 } });
      sink.emit({ type: "done", finishReason: "stop" });
    } catch (err) {
      if (err instanceof CancelledError || signal.aborted) {
        this.cancelled.push(job.id);
        return;
      }
      throw err;
    }
  }
}

class CancelledError extends Error {}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
