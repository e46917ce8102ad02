/**
 * Writes a conversation's history as a Claude Code session transcript, so that `claude --resume <session>` sends
 * the earlier turns to the model as real messages (tool calls and results included) instead of re-running them.
 *
 * The transcript format is the CLI's own (one JSON object per line under
 * `$CLAUDE_CONFIG_DIR/projects/<cwd with non-alphanumerics as "-">/<session>.jsonl`); it is not a public contract,
 * which is why the CLI version is pinned and the end-to-end tests run the real CLI. Facts it relies on (2.1.197):
 * - entries chain through `parentUuid`; the CLI rebuilds the conversation from the last entry backwards;
 * - an assistant entry needs its own `message.id` (entries sharing an id are merged as one streamed message) and
 *   the `model` the CLI will run, or the CLI drops its thinking blocks (signatures are model-bound);
 * - a transcript that ends in an assistant tool call followed by a `hook_deferred_tool` attachment resumes without
 *   a prompt: the CLI runs that call, then continues the turn.
 * Pure: the caller writes the returned text to `transcriptPath(...)`.
 */
import { join } from "node:path";
import type { AnthropicMessage, DeferredCall } from "./conversation.ts";

export interface TranscriptOptions {
  sessionId: string;
  /** The CLI's working directory (real path): the transcript's folder is named after it. */
  cwd: string;
  /** The model the CLI resolves `--model` to (e.g. "claude-opus-4-8" for "opus"). */
  model: string;
  cliVersion: string;
  history: AnthropicMessage[];
  deferred?: DeferredCall;
  /** Fixed in tests; defaults to random UUIDs. */
  newUuid?: () => string;
  timestamp?: string;
}

/** Where the CLI looks for a session's transcript. */
export function transcriptPath(configDir: string, cwd: string, sessionId: string): string {
  return join(configDir, "projects", projectDirName(cwd), `${sessionId}.jsonl`);
}

/** The CLI's folder name for a project: every character outside [A-Za-z0-9] becomes "-" (paths are kept short). */
export function projectDirName(cwd: string): string {
  return cwd.replace(/[^a-zA-Z0-9]/g, "-");
}

export function buildTranscript(options: TranscriptOptions): string {
  const newUuid = options.newUuid ?? (() => crypto.randomUUID());
  const timestamp = options.timestamp ?? new Date().toISOString();
  const common = {
    isSidechain: false,
    timestamp,
    sessionId: options.sessionId,
    cwd: options.cwd,
    userType: "external",
    version: options.cliVersion,
  };
  const lines: string[] = [];
  let parentUuid: string | null = null;
  const append = (entry: Record<string, unknown>) => {
    const uuid = newUuid();
    lines.push(JSON.stringify({ parentUuid, ...common, ...entry, uuid }));
    parentUuid = uuid;
  };
  options.history.forEach((message, index) => {
    if (message.role === "user") {
      append({ type: "user", message: { role: "user", content: message.content } });
      return;
    }
    const calls = message.content.some((b) => b.type === "tool_use");
    append({
      type: "assistant",
      message: {
        id: `msg_auxot_${index}`,
        type: "message",
        role: "assistant",
        model: options.model,
        content: message.content,
        stop_reason: calls ? "tool_use" : "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
  });
  if (options.deferred) {
    const { toolUseId, name, input } = options.deferred;
    append({
      type: "attachment",
      attachment: {
        type: "hook_deferred_tool",
        toolUseID: toolUseId,
        toolName: name,
        toolInput: input,
        hookName: `PreToolUse:${name}`,
        hookEvent: "PreToolUse",
        permissionMode: "default",
      },
    });
  }
  return lines.map((line) => line + "\n").join("");
}
