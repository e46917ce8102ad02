/**
 * The server-side tool loop: an EventSource (src/dispatch/chat.ts) that chains jobs so the caller sees one
 * answer. The model is offered the server tools available now (src/tools/catalog.ts) next to the caller's own;
 * when a round of generation ends in calls to server tools only, each call runs as a tool job, the results are
 * appended to the conversation and generation continues — up to `maxRounds` rounds of tool calls.
 *
 * What the caller sees, and the decisions behind it:
 * - Text and reasoning stream through from every round (a blank line separates the text of successive rounds).
 *   Server tool calls and their results are not shown: Chat Completions has no place for them, and the job
 *   event stream (src/protocol/events.ts) has no event for a tool that ran on the server.
 * - Calls to the caller's own tools go back to the caller as usual, with dense indices. A name that is both a
 *   caller tool and a server tool belongs to the caller: the server tool is not offered to that request.
 * - A round that mixes caller and server calls ends the loop: the caller's calls go back, and the server calls
 *   of that round are dropped (the model will ask again on the next turn, with the caller's results in hand).
 * - A forced `tool_choice` (a named tool, or "required") applies to the first round only; later rounds use
 *   "auto", so a forced server tool cannot loop. After `maxRounds` rounds of calls the server tools are no
 *   longer offered, so the last round must answer (or call the caller's tools).
 * - A tool that fails (a tool error, or an infrastructure failure such as a lost tools worker or a timeout)
 *   becomes an error result for the model, which can answer without it: the answer goes on.
 * - Usage is the sum over all rounds, reported once before the end. The response model is the first round's.
 * - Server tools the caller declared by type (Anthropic's web_search / web_fetch, see declared.ts) are the
 *   exception to "not shown": their calls get `srvtoolu_` ids, and each ran call is reported to the caller as a
 *   `server_tool_use` event and a `server_tool_result` event, between the rounds' text.
 */
import { ApiError } from "../http/errors.ts";
import type { ChatMessage, ChatRequest, DeclaredServerTool, ToolDefinition } from "../protocol/chat.ts";
import type { JobEvent, Usage } from "../protocol/events.ts";
import type { RouterContext } from "../dispatch/context.ts";
import { type ChatDispatch, singleJob, type SourceFactory } from "../dispatch/chat.ts";
import { type EventSource, type JobRun, startJob } from "../dispatch/job-run.ts";
import { serverTools } from "./catalog.ts";
import { runServerTool } from "./run.ts";
import { declaredDefinitions, declaredFailure, runDeclared } from "./declared.ts";

export const MAX_TOOL_ROUNDS = 8;
/** The dispatcher's keep-alive interval: a stream waiting on tools still sends keep-alives. */
const KEEP_ALIVE_MS = 15_000;

export interface ToolLoopOptions {
  /** Rounds of server tool calls at most (default 8). */
  maxRounds?: number;
}

/**
 * The source of a chat request's answer, chosen once by app.ts: the server-tool loop when server tools are offered
 * to this request, a single job otherwise. A forced tool_choice is checked here against the tools the model will
 * really see.
 */
export async function chooseAnswerSource(
  ctx: RouterContext,
  d: ChatDispatch,
  options: ToolLoopOptions = {},
): Promise<SourceFactory> {
  const offered = await offeredTools(ctx, d.request);
  checkToolChoice(d, offered);
  // Declared server tools never reach a worker as such: they are offered as tools like any other.
  const { serverTools: declared = [], ...base } = d.request;
  if (offered.length === 0) {
    return declared.length === 0
      ? singleJob
      : (ctx, d, id, now) => startJob(ctx, base, d.mode ?? "generate", id, now, d.stream, d.signal);
  }
  const maxRounds = options.maxRounds ?? MAX_TOOL_ROUNDS;
  return async (ctx, d, id, now) => {
    const mode = d.mode ?? "generate";
    const request: ChatRequest = { ...base, tools: [...base.tools, ...offered] };
    // count_tokens counts the prompt the model would really see, server tools included.
    const first = await startJob(ctx, request, mode, id, now, d.stream, d.signal);
    if (mode === "count_tokens") return first;
    return new ToolLoopSource(ctx, id, request, base.tools, offered, declared, first, maxRounds, d.stream);
  };
}

async function offeredTools(ctx: RouterContext, request: ChatRequest): Promise<ToolDefinition[]> {
  // Legacy text completions have no tools.
  if (request.prompt !== undefined) return [];
  const declared = request.serverTools ?? [];
  const catalog = declared.length > 0 || request.toolChoice !== "none" ? await serverTools(ctx) : [];
  // A declared tool nobody serves is refused even when the caller wants no tool calls (as Anthropic validates).
  const visible = declaredDefinitions(declared, catalog);
  // "none" means the caller wants no tool calls at all.
  if (request.toolChoice === "none") return [];
  const taken = new Set([...request.tools.map((t) => t.name), ...visible.map((t) => t.name)]);
  // The tool behind a declared one is offered once, under the caller's name.
  for (const tool of declared) taken.add(tool.tool);
  return [...visible, ...catalog.filter((t) => !taken.has(t.name))];
}

/**
 * A named tool_choice must name a caller tool or an offered server tool, and OpenAI's "required" needs a tool.
 * Checked here, not in the API transforms, because only the router knows which server tools are available.
 */
function checkToolChoice(d: ChatDispatch, offered: ToolDefinition[]): void {
  const choice = d.request.toolChoice;
  const tools = [...d.request.tools, ...offered];
  let error: ApiError | undefined;
  if (choice === "required" && tools.length === 0 && d.request.prompt === undefined) {
    error = d.flavour.toolChoiceError("required", choice);
  } else if (typeof choice === "object" && !tools.some((t) => t.name === choice.name)) {
    error = d.flavour.toolChoiceError("unknown", choice);
  }
  if (error) throw error;
}

interface RoundCall {
  id: string;
  name: string;
  arguments: string;
  server: boolean;
  /** Index among the calls shown to the caller (-1 for server calls). */
  shownIndex: number;
}

interface Round {
  text: string;
  reasoning: string;
  signature?: string;
  calls: RoundCall[];
  usage?: Usage;
  done?: Extract<JobEvent, { type: "done" }>;
  failed: boolean;
}

class ToolLoopSource implements EventSource {
  #pending: JobEvent[] = [];
  #failure: { error: unknown } | undefined;
  #producing = true;
  #wake: (() => void) | undefined;
  #current: JobRun;
  #cancelled = false;
  #startSent = false;
  #textSent = false;
  /** A declared tool's blocks were shown since the last text: the next text starts a block of its own. */
  #blockAfterText = false;
  readonly #abort = new AbortController();
  readonly #serverNames: Set<string>;
  readonly #declared: Map<string, DeclaredServerTool>;
  readonly #uses = new Map<string, number>();

  constructor(
    readonly ctx: RouterContext,
    readonly id: string,
    readonly request: ChatRequest,
    readonly callerTools: ToolDefinition[],
    offered: ToolDefinition[],
    declared: DeclaredServerTool[],
    first: JobRun,
    readonly maxRounds: number,
    /** The caller streams: each round's first token is posted on its own (worker protocol `stream`). */
    readonly streamed: boolean,
  ) {
    this.#serverNames = new Set(offered.map((t) => t.name));
    this.#declared = new Map(declared.map((t) => [t.name, t]));
    this.#current = first;
    this.#produce()
      .catch((error) => {
        if (!this.#cancelled) this.#failure = { error };
      })
      .finally(() => {
        this.#producing = false;
        this.#notify();
      });
  }

  get finished(): boolean {
    return !this.#producing && this.#pending.length === 0 && !this.#failure;
  }

  async next(signal: AbortSignal, allowEmpty: boolean): Promise<JobEvent[]> {
    for (;;) {
      if (this.#pending.length > 0) return this.#pending.splice(0);
      if (this.#failure) {
        const { error } = this.#failure;
        this.#failure = undefined;
        throw error;
      }
      if (!this.#producing) return [];
      if (signal.aborted) throw new ApiError("api_error", "The caller disconnected.");
      const woken = await this.#waitForProducer(signal, allowEmpty ? KEEP_ALIVE_MS : undefined);
      if (!woken && allowEmpty && this.#pending.length === 0 && this.#producing) return [];
    }
  }

  async cancel(reason: "caller_left" | "timeout" | "queue_timeout"): Promise<void> {
    if (this.#cancelled || this.finished) return;
    this.#cancelled = true;
    this.#abort.abort(reason);
    await this.#current.cancel(reason);
  }

  #push(events: JobEvent[]): void {
    if (events.length === 0) return;
    this.#pending.push(...events);
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #waitForProducer(signal: AbortSignal, timeoutMs: number | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (this.#wake === onWake) this.#wake = undefined;
        resolve(woken);
      };
      const onWake = () => finish(true);
      const onAbort = () => finish(false);
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish(false), timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#wake = onWake;
    });
  }

  async #produce(): Promise<void> {
    const usage: Usage[] = [];
    let request = this.request;
    for (let round = 0;; round++) {
      const serverNames = round < this.maxRounds ? this.#serverNames : new Set<string>();
      const result = await this.#relay(this.#current, serverNames, round);
      if (result.failed || this.#cancelled) return;
      if (result.usage) usage.push(result.usage);
      const serverCalls = result.calls.filter((c) => c.server);
      if (serverCalls.length === 0 || serverCalls.length < result.calls.length) {
        if (usage.length > 0) this.#push([{ type: "usage", usage: sumUsage(usage) }]);
        this.#push([result.done!]);
        return;
      }
      const outcomes = await Promise.all(serverCalls.map((call) => this.#execute(call)));
      if (this.#cancelled) return;
      const shown = outcomes.flatMap((outcome) => outcome.shown ?? []);
      if (shown.length > 0) {
        this.#blockAfterText = true;
        this.#push(shown);
      }
      request = continuation(request, result, serverCalls, outcomes, round + 1 >= this.maxRounds, this.callerTools);
      const id = crypto.randomUUID().replaceAll("-", "");
      this.#current = await startJob(
        this.ctx,
        request,
        "generate",
        id,
        this.ctx.now(),
        this.streamed,
        this.#abort.signal,
      );
      if (this.#cancelled) {
        await this.#current.cancel("caller_left");
        return;
      }
    }
  }

  /** Reads one round to its end, passing through what the caller sees and keeping what the loop needs. */
  async #relay(run: JobRun, serverNames: Set<string>, roundIndex: number): Promise<Round> {
    const round: Round = { text: "", reasoning: "", calls: [], failed: false };
    const byIndex = new Map<number, RoundCall>();
    let shown = 0;
    while (!run.finished) {
      const events = await run.next(this.#abort.signal, false);
      const out: JobEvent[] = [];
      for (const event of events) {
        switch (event.type) {
          case "start":
            if (!this.#startSent) out.push(event);
            this.#startSent = true;
            break;
          case "text":
            if (!event.text) break;
            if (roundIndex > 0 && round.text === "" && this.#textSent && !this.#blockAfterText) {
              out.push({ type: "text", text: "\n\n" });
            }
            round.text += event.text;
            this.#textSent = true;
            this.#blockAfterText = false;
            out.push(event);
            break;
          case "reasoning":
            round.reasoning += event.text;
            out.push(event);
            break;
          case "reasoning_signature":
            round.signature = event.signature;
            out.push(event);
            break;
          case "tool_call": {
            const server = serverNames.has(event.name);
            const shownServer = server && this.#declared.has(event.name);
            const call: RoundCall = {
              id: shownServer
                ? `srvtoolu_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`
                : event.id || `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
              name: event.name,
              arguments: "",
              server,
              shownIndex: server ? -1 : shown++,
            };
            byIndex.set(event.index, call);
            round.calls.push(call);
            if (!server) out.push({ ...event, index: call.shownIndex });
            break;
          }
          case "tool_args": {
            const call = byIndex.get(event.index);
            if (!call) break;
            call.arguments += event.delta;
            if (!call.server) out.push({ ...event, index: call.shownIndex });
            break;
          }
          case "usage":
            round.usage = event.usage;
            break;
          case "done":
            round.done = event;
            break;
          case "error":
            round.failed = true;
            out.push(event);
            break;
        }
      }
      this.#push(out);
    }
    if (!round.done && !round.failed) {
      round.failed = true;
      this.#push([{
        type: "error",
        message: "the answer ended without a result",
        retryable: false,
        code: "worker_lost",
      }]);
    }
    return round;
  }

  async #execute(call: RoundCall): Promise<{ text: string; isError: boolean; shown?: JobEvent[] }> {
    let args: unknown;
    const declared = this.#declared.get(call.name);
    try {
      args = call.arguments.trim() === "" ? {} : JSON.parse(call.arguments);
    } catch (err) {
      if (declared) return shownFailure(declared, call.id);
      return { text: `The arguments for ${call.name} are not valid JSON: ${(err as Error).message}`, isError: true };
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      if (declared) return shownFailure(declared, call.id);
      return { text: `The arguments for ${call.name} must be a JSON object.`, isError: true };
    }
    if (declared) {
      const uses = (this.#uses.get(call.name) ?? 0) + 1;
      this.#uses.set(call.name, uses);
      const input = args as Record<string, unknown>;
      const ran = await runDeclared(this.ctx, declared, { id: call.id, args: input }, uses, this.#abort.signal);
      this.ctx.log.info("server tool ran", { answer: this.id, tool: call.name, declared: declared.type });
      return { text: ran.text, isError: ran.isError, shown: ran.events };
    }
    const outcome = await runServerTool(
      this.ctx,
      { name: call.name, arguments: args as Record<string, unknown> },
      this.#abort.signal,
    );
    this.ctx.metrics.toolCalled(call.name, outcome.ok ? "ok" : outcome.code === "tool_error" ? "error" : outcome.code);
    this.ctx.log.info("server tool ran", {
      answer: this.id,
      tool: call.name,
      outcome: outcome.ok ? "ok" : outcome.code,
    });
    if (outcome.ok) return { text: outcome.content || "(no output)", isError: false };
    return {
      text: outcome.code === "tool_error" ? outcome.message : `Tool unavailable: ${outcome.message}`,
      isError: true,
    };
  }
}

/** A declared tool's call whose arguments are not a JSON object: shown to the caller as invalid_tool_input. */
function shownFailure(tool: DeclaredServerTool, id: string): { text: string; isError: boolean; shown: JobEvent[] } {
  const failed = declaredFailure(tool, { id, args: {} }, "invalid_tool_input");
  return { text: failed.text, isError: true, shown: failed.events };
}

/** The request for the next round: the model's turn with its server calls, then their results. */
function continuation(
  request: ChatRequest,
  round: Round,
  calls: RoundCall[],
  outcomes: { text: string; isError: boolean }[],
  lastRound: boolean,
  callerTools: ToolDefinition[],
): ChatRequest {
  const assistant: ChatMessage = {
    role: "assistant",
    content: round.text ? [{ type: "text", text: round.text }] : [],
    ...(round.reasoning || round.signature
      ? { reasoning: [{ text: round.reasoning, ...(round.signature ? { signature: round.signature } : {}) }] }
      : {}),
    toolCalls: calls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments.trim() || "{}" })),
  };
  const results: ChatMessage[] = calls.map((c, i) => ({
    role: "tool",
    toolCallId: c.id,
    content: [{ type: "text", text: outcomes[i].text }],
    ...(outcomes[i].isError ? { isError: true } : {}),
  }));
  const tools = lastRound ? callerTools : request.tools;
  return {
    ...request,
    messages: [...request.messages, assistant, ...results],
    tools,
    toolChoice: tools.length === 0 ? "none" : "auto",
  };
}

function sumUsage(all: Usage[]): Usage {
  const sum = (pick: (u: Usage) => number | undefined) => all.reduce((n, u) => n + (pick(u) ?? 0), 0);
  const creation = all.some((u) => u.cacheCreationTokens !== undefined);
  const cost = all.some((u) => u.costUsd !== undefined);
  return {
    promptTokens: sum((u) => u.promptTokens),
    completionTokens: sum((u) => u.completionTokens),
    cachedTokens: sum((u) => u.cachedTokens),
    ...(creation ? { cacheCreationTokens: sum((u) => u.cacheCreationTokens) } : {}),
    ...(cost ? { costUsd: sum((u) => u.costUsd) } : {}),
  };
}
