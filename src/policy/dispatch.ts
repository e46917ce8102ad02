/**
 * The lane choice for a chat job: the model its request names (or an alias of it, or the default), refused at once
 * when the router knows no connected worker serves it. Used by the chat pipeline's `startJob`.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { Policy, PolicyModel } from "../protocol/worker-protocol.ts";
import { assertModelServed } from "./availability.ts";
import { laneOf, policyModels, resolveModel } from "./route.ts";

export interface ChatRoute {
  lane: string;
  model: PolicyModel;
  /** The request to enqueue: its conversation key scoped to the model when the policy has several chat models. */
  request: ChatRequest;
}

export async function routeChatJob(ctx: RouterContext, request: ChatRequest): Promise<ChatRoute> {
  const model = resolveModel(ctx.config.policy, ctx.config.aliases, request.requestedModel, "chat");
  await assertModelServed(ctx, model);
  return { lane: laneOf(model), model, request: scopeConversation(ctx.config.policy, request, model) };
}

/**
 * One Claude Code session sends its main turns and its background (haiku) turns under one session id. The KV-cache
 * affinity key must then name the model too: otherwise a haiku job would wait its affinity window for the worker that
 * holds the session's cache for the big model, which never takes small-model jobs. One-chat-model policies keep the
 * key as it is.
 */
export function scopeConversation(policy: Policy, request: ChatRequest, model: PolicyModel): ChatRequest {
  const key = request.conversationKey;
  if (key === undefined || policyModels(policy).filter((m) => m.kind === "chat").length < 2) return request;
  const prefix = `${model.name}|`;
  return key.startsWith(prefix) ? request : { ...request, conversationKey: (prefix + key).slice(0, 200) };
}
