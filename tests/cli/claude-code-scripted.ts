/**
 * The scripted engine (tests/helpers/scripted-engine.ts) adapted to requests that come from the Claude Code CLI:
 * the CLI adds its own context (`<system-reminder>` blocks) to the user turn and, after tool results, its resume
 * prompt. This variant finds the caller's instruction in the last user turn without those blocks and, when the
 * turn carries tool results, answers `echo results: <result texts> / <text beside them>` so a test can see what
 * came back. It records the jobs as they arrived (`original`).
 */
import type { ChatMessage } from "../../src/protocol/chat.ts";
import type { ChatJob, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "../../workers/common/engine.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

export class ClaudeCodeScriptedEngine extends ScriptedEngine {
  readonly original: ChatJob[] = [];

  override run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") return super.run(job, sink, signal);
    this.original.push(job);
    const instruction = callerInstruction(job.request.messages);
    return super.run(
      {
        ...job,
        request: {
          ...job.request,
          messages: [...job.request.messages, { role: "user", content: [{ type: "text", text: instruction }] }],
        },
      },
      sink,
      signal,
    );
  }
}

export function callerInstruction(messages: ChatMessage[]): string {
  const lastAssistant = messages.findLastIndex((m) => m.role === "assistant");
  const turn = messages.slice(lastAssistant + 1);
  const results = turn.filter((m) => m.role === "tool").map((m) => textOf(m.content));
  const said = turn.filter((m) => m.role === "user").map((m) => textOf(m.content)).join("").trim();
  return results.length > 0 ? `echo results: ${results.join(" + ")} / ${said}` : said;
}

function textOf(parts: ChatMessage["content"]): string {
  return parts.map((p) => (p.type === "text" && !p.text.startsWith("<system-reminder>") ? p.text : "")).join("");
}
