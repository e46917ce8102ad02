/**
 * Job events → OpenAI Responses API: the SSE event stream and the non-streaming Response object, both from one
 * `ResponseBuilder`, so a stream and a body of the same events always agree. Shapes follow the openai SDK's
 * `ResponseStreamEvent` types. Pure: no I/O, no clock.
 *
 * Sequence: `response.created`, `response.in_progress`, then per output item `response.output_item.added`, its
 * parts and deltas, `response.output_item.done`; finally `response.completed` (or `.incomplete` when the output
 * limit cut the answer, or `.failed`). Every event has a `sequence_number` counting from 0.
 *
 * Decisions the wire format leaves open:
 * - Reasoning is one `reasoning` item per run of reasoning: as a summary (`reasoning_summary_part.added`,
 *   `reasoning_summary_text.delta`, ...) when the request asked for `reasoning.summary` — the model's reasoning is
 *   its own summary, there is no second model to shorten it — else as `reasoning_text` content, as open-weight
 *   models served by other gateways do. With `include: ["reasoning.encrypted_content"]` the item carries the text
 *   encoded for the next turn (to-chat.ts).
 * - Function calls stream their argument text as the worker produces it. Custom tool calls are held until their
 *   input is complete, then checked against the tool's grammar (custom-tools.ts): a valid input is sent as one
 *   `custom_tool_call_input.delta`; an invalid one fails the response (`response.failed`, code `server_error`), so
 *   a client never runs input that does not parse. A custom call cut off by the output limit is left out of an
 *   incomplete response (its input is unfinished by definition).
 * - `incomplete_details.reason` is "max_output_tokens" when generation stopped at the limit; the item being
 *   written then has status "incomplete".
 * - Usage: `input_tokens` is the whole prompt with `cached_tokens` of it reused; `reasoning_tokens` is what the
 *   engine counted (0 where it cannot tell).
 */
import type { JobEvent, Usage } from "../../protocol/events.ts";
import type { ResponseMeta } from "../flavour.ts";
import { customToolInput } from "./custom-tools.ts";
import { defaults, jsonObject, textPart, usageBody } from "./shapes.ts";
import { encodeReasoning, type ResponsesEcho } from "./to-chat.ts";

type Item = Record<string, unknown> & { id: string; type: string };
type Event = Record<string, unknown> & { type: string };

interface OpenItem {
  item: Item;
  outputIndex: number;
  /** Text written so far (message text, reasoning text, function arguments or custom input). */
  text: string;
}

interface PendingCustom {
  id: string;
  callId: string;
  internalName: string;
  input: string;
}

/** The error of a response that failed after it started. */
export interface ResponseFailure {
  code: string;
  message: string;
}

const EMPTY_ECHO: ResponsesEcho = { fields: {}, tools: {}, summary: false, encryptedReasoning: false };

export class ResponseBuilder {
  readonly output: Item[] = [];
  #open: OpenItem | undefined;
  /** Tool call index (from the events) → its open function call, or its pending custom call. */
  #calls = new Map<number, OpenItem | PendingCustom>();
  #usage?: Usage;
  #created = false;
  #itemCounter = 0;
  status: "in_progress" | "completed" | "incomplete" | "failed" = "in_progress";
  failure?: ResponseFailure;

  constructor(readonly meta: ResponseMeta, readonly echo: ResponsesEcho = EMPTY_ECHO) {}

  /** The Response object as it stands. */
  response(): Record<string, unknown> {
    const done = this.status !== "in_progress";
    return {
      id: `resp_${this.meta.id}`,
      object: "response",
      created_at: this.meta.created,
      status: this.status,
      background: false,
      error: this.failure ? { code: this.failure.code, message: this.failure.message } : null,
      incomplete_details: this.status === "incomplete" ? { reason: "max_output_tokens" } : null,
      model: this.meta.model,
      output: done ? this.output : [],
      previous_response_id: null,
      service_tier: "default",
      store: false,
      ...defaults,
      ...this.echo.fields,
      usage: done && this.status !== "failed" ? usageBody(this.#usage) : null,
    };
  }

  /** The stream events for one job event (none once the response has ended: nothing follows its last event). */
  step(event: JobEvent): Event[] {
    const events = this.#begin();
    if (this.status !== "in_progress") return events;
    this.#step(event, events);
    const failed = events.findIndex((e) => e.type === "response.failed");
    return failed >= 0 ? events.slice(0, failed + 1) : events;
  }

  /**
   * `step({type: "text", text})` when the text only extends the open message (its one event is that text's
   * `response.output_text.delta` at the returned place): the text is added and the caller writes the event.
   * Undefined, changing nothing, in any other state.
   */
  extendMessage(text: string): { itemId: string; outputIndex: number } | undefined {
    const open = this.#open;
    if (!text || !this.#created || this.status !== "in_progress" || open?.item.type !== "message") return undefined;
    open.text += text;
    return { itemId: open.item.id, outputIndex: open.outputIndex };
  }

  #step(event: JobEvent, events: Event[]): void {
    switch (event.type) {
      case "start":
        break;
      case "text":
        if (event.text) events.push(...this.#write("message", event.text));
        break;
      case "reasoning":
        if (event.text) events.push(...this.#write("reasoning", event.text));
        break;
      case "tool_call":
        events.push(...this.#closeOpen("completed"), ...this.#flushCustom());
        events.push(...this.#startCall(event.index, event.id, event.name));
        break;
      case "tool_args": {
        const call = this.#calls.get(event.index);
        if (!call) break;
        if ("item" in call) {
          call.text += event.delta;
          events.push({
            type: "response.function_call_arguments.delta",
            item_id: call.item.id,
            output_index: call.outputIndex,
            delta: event.delta,
          });
        } else call.input += event.delta;
        break;
      }
      case "usage":
        this.#usage = event.usage;
        break;
      case "done": {
        const incomplete = event.finishReason === "length";
        events.push(...this.#closeOpen(incomplete ? "incomplete" : "completed"));
        events.push(...this.#flushCustom(incomplete));
        if (this.status === "failed") break; // a custom call's input did not parse: already reported
        this.status = incomplete ? "incomplete" : "completed";
        events.push({ type: incomplete ? "response.incomplete" : "response.completed", response: this.response() });
        break;
      }
      case "reasoning_signature":
      case "error":
        break;
    }
  }

  /** The events that end a response that failed after it started. */
  fail(failure: ResponseFailure): Event[] {
    const events = this.#begin();
    if (this.status !== "in_progress") return events;
    events.push(...this.#closeOpen("incomplete"));
    this.status = "failed";
    this.failure = failure;
    events.push({ type: "response.failed", response: this.response() });
    return events;
  }

  #begin(): Event[] {
    if (this.#created) return [];
    this.#created = true;
    return [
      { type: "response.created", response: this.response() },
      { type: "response.in_progress", response: this.response() },
    ];
  }

  #newId(prefix: string): string {
    return `${prefix}_${this.meta.id}${(this.#itemCounter++).toString(16).padStart(4, "0")}`;
  }

  #add(item: Item): { open: OpenItem; event: Event } {
    const open = { item, outputIndex: this.output.length, text: "" };
    this.output.push(item);
    return { open, event: { type: "response.output_item.added", output_index: open.outputIndex, item: { ...item } } };
  }

  #write(kind: "message" | "reasoning", text: string): Event[] {
    const events: Event[] = [];
    if (this.#open?.item.type !== kind) {
      events.push(...this.#closeOpen("completed"), ...this.#flushCustom());
      events.push(...(kind === "message" ? this.#openMessage() : this.#openReasoning()));
    }
    const open = this.#open!;
    open.text += text;
    const at = { item_id: open.item.id, output_index: open.outputIndex };
    if (kind === "message") {
      events.push({ type: "response.output_text.delta", ...at, content_index: 0, delta: text, logprobs: [] });
    } else if (this.echo.summary) {
      events.push({ type: "response.reasoning_summary_text.delta", ...at, summary_index: 0, delta: text });
    } else {
      events.push({ type: "response.reasoning_text.delta", ...at, content_index: 0, delta: text });
    }
    return events;
  }

  #openMessage(): Event[] {
    const { open, event } = this.#add({
      id: this.#newId("msg"),
      type: "message",
      status: "in_progress",
      content: [],
      role: "assistant",
    });
    this.#open = open;
    return [event, {
      type: "response.content_part.added",
      item_id: open.item.id,
      output_index: open.outputIndex,
      content_index: 0,
      part: textPart(""),
    }];
  }

  #openReasoning(): Event[] {
    const { open, event } = this.#add({ id: this.#newId("rs"), type: "reasoning", summary: [] });
    this.#open = open;
    const at = { item_id: open.item.id, output_index: open.outputIndex };
    if (this.echo.summary) {
      return [event, {
        type: "response.reasoning_summary_part.added",
        ...at,
        summary_index: 0,
        part: { type: "summary_text", text: "" },
      }];
    }
    return [event, {
      type: "response.content_part.added",
      ...at,
      content_index: 0,
      part: { type: "reasoning_text", text: "" },
    }];
  }

  #startCall(index: number, callId: string, internalName: string): Event[] {
    const shape = this.echo.tools[internalName];
    if (shape?.kind === "custom" || shape?.kind === "tool_search") {
      this.#calls.set(index, {
        id: this.#newId(shape.kind === "custom" ? "ctc" : "tsc"),
        callId,
        internalName,
        input: "",
      });
      return [];
    }
    const { open, event } = this.#add({
      id: this.#newId("fc"),
      type: "function_call",
      status: "in_progress",
      arguments: "",
      call_id: callId,
      name: shape?.name ?? internalName,
      ...(shape?.namespace ? { namespace: shape.namespace } : {}),
    });
    this.#open = open;
    this.#calls.set(index, open);
    return [event];
  }

  /** Ends the item being written (a message, reasoning, or function call). */
  #closeOpen(status: "completed" | "incomplete"): Event[] {
    const open = this.#open;
    if (!open) return [];
    this.#open = undefined;
    const at = { item_id: open.item.id, output_index: open.outputIndex };
    const item = open.item;
    const events: Event[] = [];
    if (item.type === "message") {
      const part = textPart(open.text);
      events.push(
        { type: "response.output_text.done", ...at, content_index: 0, text: open.text, logprobs: [] },
        { type: "response.content_part.done", ...at, content_index: 0, part },
      );
      Object.assign(item, { status, content: [part] });
    } else if (item.type === "reasoning") {
      if (this.echo.summary) {
        const part = { type: "summary_text", text: open.text };
        events.push(
          { type: "response.reasoning_summary_text.done", ...at, summary_index: 0, text: open.text },
          { type: "response.reasoning_summary_part.done", ...at, summary_index: 0, part },
        );
        item.summary = [part];
      } else {
        const part = { type: "reasoning_text", text: open.text };
        events.push(
          { type: "response.reasoning_text.done", ...at, content_index: 0, text: open.text },
          { type: "response.content_part.done", ...at, content_index: 0, part },
        );
        item.content = [part];
      }
      if (this.echo.encryptedReasoning) item.encrypted_content = encodeReasoning(open.text);
    } else if (item.type === "function_call") {
      events.push({
        type: "response.function_call_arguments.done",
        ...at,
        name: item.name,
        arguments: open.text,
      });
      Object.assign(item, { status, arguments: open.text });
    }
    events.push({ type: "response.output_item.done", output_index: open.outputIndex, item: { ...item } });
    return events;
  }

  /** A client-side tool search call: its arguments are a JSON object (not text), sent whole. */
  #toolSearchCall(call: PendingCustom): Event[] {
    const args = jsonObject(call.input || "{}");
    if (!args) {
      return this.fail({ code: "server_error", message: "The model's tool_search arguments are not a JSON object." });
    }
    const { open, event } = this.#add({
      id: call.id,
      type: "tool_search_call",
      status: "in_progress",
      call_id: call.callId,
      execution: "client",
      arguments: {},
    });
    Object.assign(open.item, { status: "completed", arguments: args });
    return [event, { type: "response.output_item.done", output_index: open.outputIndex, item: { ...open.item } }];
  }

  /** Sends the custom tool calls whose input is complete, once checked; an invalid one fails the response. */
  #flushCustom(cutOff = false): Event[] {
    const events: Event[] = [];
    for (const [index, call] of this.#calls) {
      if ("item" in call) continue;
      this.#calls.delete(index);
      if (cutOff || this.status === "failed") continue;
      const shape = this.echo.tools[call.internalName];
      if (shape?.kind === "tool_search") {
        events.push(...this.#toolSearchCall(call));
        continue;
      }
      const checked = customToolInput(call.input, shape?.grammar);
      if (!checked.ok) {
        events.push(...this.fail({
          code: "server_error",
          message: `The model's input for the custom tool '${shape?.name ?? call.internalName}' is not valid: ` +
            `${checked.reason}. A retry samples a new answer.`,
        }));
        continue;
      }
      const { open, event } = this.#add({
        id: call.id,
        type: "custom_tool_call",
        status: "in_progress",
        call_id: call.callId,
        name: shape?.name ?? call.internalName,
        input: "",
        ...(shape?.namespace ? { namespace: shape.namespace } : {}),
      });
      const at = { item_id: open.item.id, output_index: open.outputIndex };
      Object.assign(open.item, { status: "completed", input: checked.input });
      events.push(
        event,
        { type: "response.custom_tool_call_input.delta", ...at, delta: checked.input },
        { type: "response.custom_tool_call_input.done", ...at, input: checked.input },
        { type: "response.output_item.done", output_index: open.outputIndex, item: { ...open.item } },
      );
    }
    return events;
  }
}
