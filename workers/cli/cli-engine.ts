/**
 * The CLI engine: serves chat jobs through the Claude Code CLI, one process per job, each in a throw-away
 * directory (its HOME, CLAUDE_CONFIG_DIR, working directory and temp folder) that is removed afterwards.
 *
 * A job: the request is planned (conversation.ts: system prompt, history transcript, final turn); the caller's tools
 * are offered through the caller-tools MCP server; the CLI runs headless and its stream-json output becomes the
 * job's events (stream-json.ts). When the model calls a caller's tool, the job ends with that call (finishReason
 * "tool_calls") and the CLI is stopped. A cancel kills the CLI's process group at once. A CLI that fails, or ends
 * without a result, ends the job with an explicit error. A rate limit ends the job with a retryable
 * "rate_limited" error carrying when to retry, and this worker takes no new job until then.
 */
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { execFile } from "node:child_process";
import type { Logger } from "../../src/log.ts";
import type { ChatRequest } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import type { ChatJob, LoadedModel, Policy, WorkerInfo, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { Engine, EventSink } from "../common/engine.ts";
import { buildCliArgs, buildCliEnv, CliProcess } from "./cli-process.ts";
import { type Isolation, probeIsolation } from "./isolation.ts";
import {
  type AnthropicBlock,
  CALLER_TOOL_PREFIX,
  CALLER_TOOL_SERVER,
  callerTools,
  CliRequestError,
  type ConversationPlan,
  planConversation,
} from "./conversation.ts";
import { CallerToolServer, type CallerToolSession, type McpTool } from "./mcp-server.ts";
import { StreamJsonTranslator } from "./stream-json.ts";
import { buildTranscript, transcriptPath } from "./transcript.ts";

/** What the pinned CLI (2.1.197) resolves its model aliases to; a run's `init` line corrects this table. */
const KNOWN_ALIASES: Record<string, string> = {
  opus: "claude-opus-4-8",
  sonnet: "claude-sonnet-5",
  haiku: "claude-haiku-4-5-20251001",
};

export interface CliEngineOptions {
  /** The `claude` executable. */
  claudePath: string;
  /** The environment each CLI's is filtered from (default: this process's). */
  env?: Record<string, string | undefined>;
  /** Extra variable names to pass through to the CLI. */
  passEnv?: string[];
  /** Values that must never reach the CLI (the worker key). */
  secrets?: string[];
  /** Where per-job directories are made (default: the system temp folder). */
  workDir?: string;
  /** Files the CLI must not read when it runs built-in tools (the worker's key file): covered in its namespace. */
  hiddenPaths?: string[];
  log?: Logger;
  /** Epoch milliseconds. */
  now?: () => number;
}

export class CliEngine implements Engine {
  readonly kind = "cli" as const;
  #policy?: Policy;
  #version?: string;
  #resolvedModels = new Map<string, string>();
  #pausedUntil = 0;
  #tools = new CallerToolServer();
  #running = new Set<CliProcess>();
  /** Set while the policy enables built-in CLI tools: every CLI then runs isolated (isolation.ts). */
  #isolation?: Isolation;
  readonly #now: () => number;

  constructor(readonly options: CliEngineOptions) {
    this.#now = options.now ?? Date.now;
  }

  /** Runs `claude --version`: the CLI is there and starts. Throws a message an operator can act on. */
  async probe(): Promise<string> {
    const home = await mkdtemp(join(this.options.workDir ?? tmpdir(), "auxot-cli-probe-"));
    try {
      const output = await new Promise<string>((resolve, reject) => {
        execFile(
          this.options.claudePath,
          ["--version"],
          { env: { PATH: process.env.PATH ?? "", HOME: home, DISABLE_AUTOUPDATER: "1" }, timeout: 30_000 },
          (err, stdout) => err ? reject(err) : resolve(String(stdout)),
        );
      }).catch((err: Error) => {
        throw new Error(`Cannot run Claude Code at "${this.options.claudePath}": ${err.message}`);
      });
      this.#version = /^\s*(\S+)/.exec(output)?.[1] ?? "unknown";
      return this.#version;
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }

  slots(): number {
    if (!this.#policy || this.#now() < this.#pausedUntil) return 0;
    return this.#policy.maxParallel;
  }

  /** Process ids of the CLIs running now (diagnostics; tests check that a cancel ends them). */
  get runningPids(): number[] {
    return [...this.#running].map((cli) => cli.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** Until when (epoch ms) this worker takes no jobs after a rate limit; 0 when it does. */
  get pausedUntil(): number {
    return this.#now() < this.#pausedUntil ? this.#pausedUntil : 0;
  }

  async applyPolicy(policy: Policy): Promise<LoadedModel | undefined> {
    if (policy.engine !== "cli") {
      throw new Error(`the router's policy is engine "${policy.engine}"; CLI workers need AUXOT_ENGINE=cli`);
    }
    this.#version ??= await this.probe();
    const tools = policy.cliTools ?? [];
    if (tools.length > 0 && !this.#isolation) {
      const isolation = await probeIsolation(this.options.hiddenPaths ?? [], process.env.PATH ?? "");
      if (typeof isolation === "string") {
        throw new Error(
          `the router enables built-in CLI tools (${tools.join(", ")}), which must run isolated from this worker's ` +
            `key, and ${isolation}. Run the worker on Linux with util-linux and unprivileged user namespaces.`,
        );
      }
      this.#isolation = isolation;
    }
    if (tools.length === 0) this.#isolation = undefined;
    this.#policy = policy;
    return {
      policyVersion: policy.version,
      model: policy.model.name,
      parallel: policy.maxParallel,
      ...(tools.length > 0 ? { note: `built-in CLI tools enabled: ${tools.join(", ")}` } : {}),
    };
  }

  describe(): Partial<WorkerInfo> {
    return { hardware: { backend: `claude-code ${this.#version ?? ""}`.trim().slice(0, 40) } };
  }

  async dispose(): Promise<void> {
    for (const cli of this.#running) cli.kill();
    await Promise.all([...this.#running].map((cli) => cli.exited));
    await this.#tools.close();
  }

  async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") throw new Error("a CLI worker only runs chat jobs");
    const policy = this.#policy;
    if (!policy) throw new Error("no policy applied yet");
    const model = this.#resolvedModels.get(policy.model.name) ?? KNOWN_ALIASES[policy.model.name] ??
      policy.model.name;
    if (job.mode === "count_tokens") {
      sink.emit({ type: "start", model, promptTokens: estimateTokens(job.request) });
      sink.emit({ type: "done", finishReason: "stop" });
      return;
    }
    let plan: ConversationPlan;
    try {
      plan = planConversation(job.request);
    } catch (err) {
      if (!(err instanceof CliRequestError)) throw err;
      sink.emit({ type: "error", message: err.message, retryable: false, code: err.code });
      return;
    }
    const jobDir = await mkdtemp(join(this.options.workDir ?? tmpdir(), "auxot-cli-"));
    const sessions: CallerToolSession[] = [];
    try {
      await this.#runInDirectory(job, plan, policy, model, jobDir, sessions, sink, signal);
    } finally {
      for (const session of sessions) session.close();
      await rm(jobDir, { recursive: true, force: true, maxRetries: 3 });
    }
  }

  async #runInDirectory(
    job: ChatJob,
    plan: ConversationPlan,
    policy: Policy,
    model: string,
    jobDir: string,
    sessions: CallerToolSession[],
    sink: EventSink,
    signal: AbortSignal,
  ): Promise<void> {
    const home = join(jobDir, "home");
    const configDir = join(home, ".claude");
    const tmpDir = join(jobDir, "tmp");
    await Promise.all([mkdir(configDir, { recursive: true }), mkdir(tmpDir), mkdir(join(jobDir, "work"))]);
    // The CLI names the transcript folder after its working directory's real path.
    const cwd = await realpath(join(jobDir, "work"));
    const systemPromptFile = join(jobDir, "system-prompt.txt");
    await writeFile(systemPromptFile, plan.systemPrompt);

    const { tools, originalNames } = callerTools(job.request);
    const deferred = plan.final.kind === "tool_results" ? plan.final.deferred : undefined;
    const replayName = deferred?.name.slice(CALLER_TOOL_PREFIX.length);
    if (replayName && !tools.some((t) => t.name === replayName)) {
      // The open call's tool must exist for the CLI to "run" it, even if this request no longer offers it.
      tools.push({ name: replayName, inputSchema: { type: "object" } } satisfies McpTool);
    }
    let mcpConfigFile: string | undefined;
    if (tools.length > 0) {
      const toolSession = await this.#tools.register({
        tools,
        ...(deferred && replayName ? { replay: { name: replayName, result: deferred.result } } : {}),
      });
      sessions.push(toolSession);
      mcpConfigFile = join(jobDir, "mcp.json");
      const config = { mcpServers: { [CALLER_TOOL_SERVER]: { type: "http", url: toolSession.url } } };
      await writeFile(mcpConfigFile, JSON.stringify(config));
    }

    let resumeSessionId: string | undefined;
    if (plan.history.length > 0 || deferred) {
      resumeSessionId = crypto.randomUUID();
      const file = transcriptPath(configDir, cwd, resumeSessionId);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(
        file,
        buildTranscript({
          sessionId: resumeSessionId,
          cwd,
          model,
          cliVersion: this.#version ?? "unknown",
          history: plan.history,
          ...(deferred ? { deferred } : {}),
        }),
      );
    }
    const stdin = plan.final.kind === "prompt"
      ? JSON.stringify({
        type: "user",
        message: { role: "user", content: guardSlashCommand(plan.final.content) },
        parent_tool_use_id: null,
      }) + "\n"
      : undefined;

    const reasoning = job.request.reasoning;
    const args = buildCliArgs({
      model: policy.model.name,
      systemPromptFile,
      cliTools: policy.cliTools ?? [],
      ...(mcpConfigFile ? { mcpConfigFile } : {}),
      ...(resumeSessionId ? { resumeSessionId } : {}),
      promptOnStdin: stdin !== undefined,
      ...(reasoning?.effort ? { effort: reasoning.effort === "minimal" ? "low" : reasoning.effort } : {}),
      ...(reasoning?.enabled === false ? { thinkingDisabled: true } : {}),
    });
    const env = buildCliEnv({
      base: this.options.env ?? process.env,
      passEnv: this.options.passEnv ?? [],
      secrets: this.options.secrets ?? [],
      home,
      configDir,
      tmpDir,
      ...(job.request.maxTokens ? { maxOutputTokens: job.request.maxTokens } : {}),
      ...(plan.final.kind === "tool_results" && plan.final.resumePrompt
        ? { resumePrompt: plan.final.resumePrompt }
        : {}),
    });

    if (signal.aborted) return;
    const translator = new StreamJsonTranslator({ originalToolNames: originalNames, now: this.#now });
    const emit = (event: JobEvent) => {
      if (event.type === "error" && event.code === "rate_limited" && event.retryAfterSeconds) {
        this.#pausedUntil = Math.max(this.#pausedUntil, this.#now() + event.retryAfterSeconds * 1000);
        this.options.log?.warn("rate limited: taking no jobs until the limit resets", {
          retryAfterSeconds: event.retryAfterSeconds,
        });
      }
      if (!signal.aborted) sink.emit(event);
    };
    const command = this.#isolation?.wrap(this.options.claudePath, args) ??
      { command: this.options.claudePath, args };
    const cli: CliProcess = new CliProcess(command.command, command.args, {
      cwd,
      env,
      ...(stdin !== undefined ? { stdin } : {}),
      onLine: (line) => {
        const step = translator.push(line);
        step.events.forEach(emit);
        if (translator.model) this.#resolvedModels.set(policy.model.name, translator.model);
        // The caller runs its tools: stop the CLI, which would otherwise wait on the call.
        if (step.endedWithToolCalls) cli.kill();
      },
    });
    this.#running.add(cli);
    const onAbort = () => cli.kill();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const exit = await cli.exited;
      if (!signal.aborted) translator.exitedWithoutResult(exit).forEach(emit);
      this.options.log?.debug("claude exited", { job: job.id, code: exit.code, signal: exit.signal });
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#running.delete(cli);
    }
  }
}

/**
 * The CLI runs a prompt whose last text block starts with "/name" as its own slash command (and, with slash
 * commands off, answers "isn't available" without calling the model). Splitting the leading slashes into their
 * own block keeps the text the model reads and takes it out of the CLI's command parsing.
 */
export function guardSlashCommand(content: AnthropicBlock[]): AnthropicBlock[] {
  const index = content.findLastIndex((b) => b.type === "text");
  const block = content[index];
  if (!block || block.type !== "text") return content;
  const slashes = /^\/+/.exec(block.text)?.[0];
  const rest = slashes ? block.text.slice(slashes.length) : "";
  if (!slashes || !rest.trim()) return content;
  return [
    ...content.slice(0, index),
    { type: "text", text: slashes },
    { type: "text", text: rest },
    ...content.slice(
      index + 1,
    ),
  ];
}

/** No tokenizer for Claude models here: about four characters a token, as a budget estimate. */
function estimateTokens(request: ChatRequest): number {
  return Math.ceil(JSON.stringify([request.messages, request.tools, request.prompt ?? ""]).length / 4);
}
