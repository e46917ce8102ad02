/**
 * The Responses API's SSE: each event of a `ResponseBuilder` (render.ts) named on an `event:` line and numbered
 * from 0 in `sequence_number`, as OpenAI's stream is; failures after the start become `response.failed`.
 */
import type { ApiError } from "../../http/errors.ts";
import type { JobEvent } from "../../protocol/events.ts";
import type { ResponseMeta, StreamEncoder } from "../flavour.ts";
import { encodeOnce, type SseBytes } from "../sse-bytes.ts";
import { ResponseBuilder } from "./render.ts";
import type { ResponsesEcho } from "./to-chat.ts";

type Event = ReturnType<ResponseBuilder["step"]>[number];

/** The `code` of a failed response for a router error (Codex reacts to the rate-limit and context codes). */
export function failureCode(error: ApiError): string {
  if (error.options.code === "context_length_exceeded") return "context_length_exceeded";
  if (error.kind === "rate_limit") return "rate_limit_exceeded";
  if (error.kind === "invalid_request") return "invalid_prompt";
  return "server_error";
}

const DELTA_MIDDLE = encodeOnce(`,"logprobs":[],"sequence_number":`);
const DELTA_END = encodeOnce("}\n\n");

/** SSE for the Responses API: each event named, numbered from 0. */
export class ResponsesStreamEncoder implements StreamEncoder {
  #sequence = 0;
  readonly builder: ResponseBuilder;

  constructor(meta: ResponseMeta, echo: ResponsesEcho) {
    this.builder = new ResponseBuilder(meta, echo);
  }

  #sse(events: Event[]): string {
    return events.map((event) => {
      const numbered = { ...event, sequence_number: this.#sequence++ };
      return `event: ${event.type}\ndata: ${JSON.stringify(numbered)}\n\n`;
    }).join("");
  }

  push(event: JobEvent): string {
    return this.#sse(this.builder.step(event));
  }

  /** A text token extending the open message, written as bytes (see SseBytes): the event `push` would write. */
  pushBytes(event: JobEvent, out: SseBytes): boolean {
    const at = event.type === "text" ? this.builder.extendMessage(event.text) : undefined;
    if (!at || event.type !== "text") return false;
    if (this.#deltaHead?.itemId !== at.itemId || this.#deltaHead.outputIndex !== at.outputIndex) {
      const head = `event: response.output_text.delta\ndata: {"type":"response.output_text.delta",` +
        `"item_id":${JSON.stringify(at.itemId)},"output_index":${at.outputIndex},"content_index":0,"delta":`;
      this.#deltaHead = { ...at, bytes: encodeOnce(head) };
    }
    out.bytes(this.#deltaHead.bytes);
    out.jsonString(event.text);
    out.bytes(DELTA_MIDDLE);
    out.text(String(this.#sequence++));
    out.bytes(DELTA_END);
    return true;
  }
  #deltaHead?: { itemId: string; outputIndex: number; bytes: Uint8Array };

  fail(error: ApiError): string {
    return this.#sse(this.builder.fail({ code: failureCode(error), message: error.message }));
  }

  keepAlive(): string {
    return ": keep-alive\n\n";
  }
}
