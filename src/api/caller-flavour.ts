/**
 * The flavour of a request that names none by its route: the shared `/v1/models` paths, and requests no route claims
 * (404s, 501s, the ops and tools routes), whose errors must still reach the caller in its own API's shape. The
 * path's API prefix decides, else the Anthropic SDK's `anthropic-version` header; OpenAI otherwise.
 */
import { anthropicFlavour } from "./anthropic/flavour.ts";
import type { ApiFlavour } from "./flavour.ts";
import { openaiApi } from "./openai/flavour.ts";

export function callerFlavour(request: Request): ApiFlavour {
  const path = new URL(request.url).pathname;
  if (path.startsWith("/api/anthropic/") || path.startsWith("/v1/messages")) return anthropicFlavour;
  if (path.startsWith("/api/openai/")) return openaiApi;
  return request.headers.has("anthropic-version") ? anthropicFlavour : openaiApi;
}
