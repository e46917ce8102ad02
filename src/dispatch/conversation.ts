/**
 * The conversation key of a request, for prompt-cache affinity: the client's own session id when it sends one
 * (Claude Code's `x-claude-code-session-id`, or `x-auxot-conversation-id`), else a digest of the conversation's
 * opening (its first two messages) — the part every later turn shares, which is what a worker's KV cache holds.
 */
import type { ChatRequest } from "../protocol/chat.ts";

export function conversationKeyOf(request: ChatRequest, headers: Headers): string | undefined {
  const header = headers.get("x-claude-code-session-id") ?? headers.get("x-auxot-conversation-id");
  if (header && /^[A-Za-z0-9._:-]{1,120}$/.test(header)) return `h:${header}`;
  if (request.messages.length === 0) return undefined;
  return `p:${fnv1a(JSON.stringify(request.messages.slice(0, 2)))}`;
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}
