/**
 * The lane choice for a chat job: the model its request names (or an alias of it, or the default), refused at once
 * when the router knows no connected worker serves it. Used by the chat pipeline's `startJob`.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { ChatRequest } from "../protocol/chat.ts";
import type { PolicyModel } from "../protocol/worker-protocol.ts";
import { assertModelServed } from "./availability.ts";
import { laneOf, resolveModel } from "./route.ts";

export interface ChatRoute {
  lane: string;
  model: PolicyModel;
}

export async function routeChatJob(ctx: RouterContext, request: ChatRequest): Promise<ChatRoute> {
  const model = resolveModel(ctx.config.policy, ctx.config.aliases, request.requestedModel, "chat");
  await assertModelServed(ctx, model);
  return { lane: laneOf(model), model };
}
