/**
 * The tools worker's Engine: runs tool jobs (never chat jobs) on the built-in tools and the tools of configured
 * MCP servers, run by the shared poll loop like every other worker kind. A job's result goes back as `text`
 * events then `done`; a tool-level failure (ToolError) as an `error` event with code "tool_error", which the
 * router hands to the model as an error result. Credentials arrive with each job and are passed to that one
 * call only: the engine never keeps or logs them.
 */
import type { ToolDefinition } from "../../src/protocol/chat.ts";
import type { Logger } from "../../src/log.ts";
import type { LoadedModel, WorkerInfo, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Engine, EventSink } from "../common/engine.ts";
import { errorMessage, type ServerTool, ToolError } from "./tool.ts";

/** Results larger than this are cut (with a note): they travel through the router's store. */
export const MAX_RESULT_CHARS = 200_000;
/** WorkerInfo.tools holds at most this many (src/protocol/worker-protocol.ts). */
const MAX_ADVERTISED_TOOLS = 512;
/** Text events of this size at most, so one event stays small. */
const CHUNK_CHARS = 16_000;

export interface ToolSource {
  tools(): ServerTool[];
}

export interface ToolsEngineOptions {
  builtins: ServerTool[];
  /** Further tools whose set may change while running (MCP servers). */
  sources?: ToolSource[];
  slots?: number;
  log: Logger;
}

export class ToolsEngine implements Engine {
  readonly kind = "tools" as const;
  readonly #opts: ToolsEngineOptions;
  #warnedTooMany = false;

  constructor(options: ToolsEngineOptions) {
    this.#opts = options;
  }

  slots(): number {
    return this.#opts.slots ?? 4;
  }

  /** Tools workers follow no model policy. */
  applyPolicy(): Promise<LoadedModel | undefined> {
    return Promise.resolve(undefined);
  }

  /** Every tool by name; a built-in wins over an MCP tool of the same name (they cannot clash: mcp__ prefix). */
  tools(): Map<string, ServerTool> {
    const all = new Map<string, ServerTool>();
    for (const tool of [...this.#opts.builtins, ...(this.#opts.sources ?? []).flatMap((s) => s.tools())]) {
      if (!all.has(tool.definition.name)) all.set(tool.definition.name, tool);
    }
    return all;
  }

  describe(): Partial<WorkerInfo> {
    const tools: ToolDefinition[] = [...this.tools().values()].map((t) => t.definition);
    if (tools.length > MAX_ADVERTISED_TOOLS && !this.#warnedTooMany) {
      this.#warnedTooMany = true;
      this.#opts.log.warn("too many tools to offer; the rest are left out", { offered: MAX_ADVERTISED_TOOLS });
    }
    // The worker protocol bounds a worker's tool list.
    return { tools: tools.slice(0, MAX_ADVERTISED_TOOLS) };
  }

  async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "tool") {
      sink.emit({
        type: "error",
        message: "a tools worker runs tool jobs only",
        retryable: false,
        code: "invalid_job",
      });
      return;
    }
    const log = this.#opts.log.child({ job: job.id, tool: job.tool });
    const tool = this.tools().get(job.tool);
    if (!tool) {
      sink.emit({
        type: "error",
        message: `this worker has no tool named ${job.tool}`,
        code: "tool_error",
        retryable: false,
      });
      return;
    }
    // The router's deadline for the job bounds the call, whatever the tool's own limits.
    const deadline = AbortSignal.timeout(Math.max(1, job.deadlineMs));
    const callSignal = AbortSignal.any([signal, deadline]);
    let result: string;
    try {
      result = await tool.run(job.arguments, { credentials: job.credentials, signal: callSignal, log });
    } catch (err) {
      if (signal.aborted) return; // cancelled: the loop reports nothing
      if (err instanceof ToolError) {
        log.debug("tool reported an error", { message: err.message });
        sink.emit({ type: "error", message: err.message, code: "tool_error", retryable: false });
        return;
      }
      if (deadline.aborted) {
        sink.emit({
          type: "error",
          message: `${job.tool} ran past its deadline`,
          code: "tool_error",
          retryable: false,
        });
        return;
      }
      log.warn("tool failed unexpectedly", { error: errorMessage(err) });
      sink.emit({
        type: "error",
        message: `${job.tool} failed: ${errorMessage(err)}`,
        code: "tool_error",
        retryable: false,
      });
      return;
    }
    if (result.length > MAX_RESULT_CHARS) {
      result = result.slice(0, MAX_RESULT_CHARS) + `\n[result cut at ${MAX_RESULT_CHARS} characters]`;
    }
    for (let i = 0; i < result.length; i += CHUNK_CHARS) {
      sink.emit({ type: "text", text: result.slice(i, i + CHUNK_CHARS) });
    }
    sink.emit({ type: "done", finishReason: "stop" });
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}
