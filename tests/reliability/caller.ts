/**
 * One streaming caller and a bounded load of them. Each request asks the scripted worker for an answer unique to
 * it, so the caller can tell exactly what happened: the whole answer once (completed), an explicit error in the
 * API's own JSON shape (failed), the connection cut by a dying router (connection lost), a stream that ended with
 * no terminator and no error (truncated), an answer that is not exactly the expected one (duplicated/corrupted),
 * an error whose body is not the API's shape (malformed), or nothing by the caller's deadline (hung).
 */

export type Flavour = "openai" | "anthropic";

export type OutcomeKind =
  | "completed"
  | "failed"
  | "connection_lost"
  | "truncated"
  | "duplicated"
  | "malformed"
  | "hung";

export interface Outcome {
  kind: OutcomeKind;
  /** The job id from `x-request-id`, when the router answered with headers. */
  jobId?: string;
  status?: number;
  /** What went wrong, for failures (an error type/message, or the text received). */
  detail?: string;
  /** When the call started and settled (performance.now()). */
  startedAt?: number;
  endedAt?: number;
  /** When the response headers arrived (performance.now()), and how many connection attempts it took. */
  headersAt?: number;
  attempts?: number;
}

export interface CallSpec {
  url: string;
  key: string;
  flavour: Flavour;
  /** Words of the answer; the prompt makes the scripted engine stream exactly these. */
  words: string[];
  /** Wait before the first word (ms): a window in which a lost worker's job is re-queued rather than failed. */
  thinkMs?: number;
  /** The caller gives up (and counts a hang) after this long. */
  deadlineMs: number;
  signal?: AbortSignal;
  /** A Deno HTTP client of the load's own, so the load can close its connections when it is done. */
  client?: Deno.HttpClient;
}

/** The prompt and the exact text the scripted engine answers with (`slow <ms> <words>`: each word plus a space). */
export function scriptFor(words: string[], thinkMs = 0): { prompt: string; expected: string } {
  return { prompt: `slow ${thinkMs} ${words.join(" ")}`, expected: words.map((w) => `${w} `).join("") };
}

export async function streamCall(spec: CallSpec): Promise<Outcome> {
  const { prompt, expected } = scriptFor(spec.words, spec.thinkMs);
  const timeout = AbortSignal.timeout(spec.deadlineMs);
  const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
  const anthropic = spec.flavour === "anthropic";
  const messages = [{ role: "user", content: prompt }];
  let jobId: string | undefined;
  try {
    const send = () =>
      fetch(`${spec.url}${anthropic ? "/v1/messages" : "/v1/chat/completions"}`, {
        method: "POST",
        headers: anthropic
          ? { "x-api-key": spec.key, "anthropic-version": "2023-06-01", "content-type": "application/json" }
          : { authorization: `Bearer ${spec.key}`, "content-type": "application/json" },
        body: JSON.stringify(
          anthropic ? { model: "m", max_tokens: 1000, messages, stream: true } : { model: "m", messages, stream: true },
        ),
        signal,
        ...(spec.client ? { client: spec.client } : {}),
      });
    const { response, attempts } = await withConnectRetries(send, signal);
    const timing = { headersAt: performance.now(), attempts };
    jobId = response.headers.get("x-request-id") ?? undefined;
    if (!response.ok) {
      const text = await response.text();
      const shaped = errorShape(spec.flavour, text);
      return shaped
        ? { ...timing, kind: "failed", jobId, status: response.status, detail: shaped }
        : { ...timing, kind: "malformed", jobId, status: response.status, detail: text.slice(0, 200) };
    }
    const stream = await readStream(spec.flavour, response);
    if (stream.error !== undefined) return { ...timing, kind: "failed", jobId, status: 200, detail: stream.error };
    if (stream.malformed !== undefined) {
      return { ...timing, kind: "malformed", jobId, status: 200, detail: stream.malformed };
    }
    if (!stream.ended) return { ...timing, kind: "truncated", jobId, detail: stream.text.slice(0, 200) };
    if (stream.text !== expected) return { ...timing, kind: "duplicated", jobId, detail: stream.text.slice(0, 200) };
    return { ...timing, kind: "completed", jobId };
  } catch (err) {
    if (timeout.aborted) return { kind: "hung", jobId };
    if (spec.signal?.aborted) throw err;
    const cause = (err as Error).cause;
    const why = cause instanceof Error ? cause.message.replace(/^.*?: /, "") : String(err);
    return { kind: "connection_lost", jobId, detail: why };
  }
}

/** Connection attempts per call: a refused connection never reached the router, so retrying it is safe. */
const CONNECT_ATTEMPTS = 6;

/** Retries a request whose connection was refused (a router restarting), as SDKs do, with a growing pause. */
async function withConnectRetries(
  send: () => Promise<Response>,
  signal: AbortSignal,
): Promise<{ response: Response; attempts: number }> {
  for (let attempt = 1;; attempt++) {
    try {
      return { response: await send(), attempts: attempt };
    } catch (err) {
      const refused = /Connection refused/.test(String((err as Error).cause ?? ""));
      if (!refused || attempt >= CONNECT_ATTEMPTS || signal.aborted) throw err;
      await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
}

/** `type: message` when `text` is an error in the flavour's JSON shape, else undefined. */
export function errorShape(flavour: Flavour, text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  const error = (body as { error?: unknown } | null)?.error as { type?: unknown; message?: unknown } | undefined;
  if (typeof error !== "object" || error === null) return undefined;
  if (typeof error.type !== "string" || typeof error.message !== "string") return undefined;
  if (flavour === "anthropic" && (body as { type?: unknown }).type !== "error") return undefined;
  return `${error.type}: ${error.message}`;
}

interface StreamResult {
  text: string;
  ended: boolean;
  error?: string;
  malformed?: string;
}

async function readStream(flavour: Flavour, response: Response): Promise<StreamResult> {
  const result: StreamResult = { text: "", ended: false };
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  for await (const chunk of response.body!) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line.startsWith("event:")) event = line.slice(6).trim();
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (flavour === "openai" && data === "[DONE]") {
        result.ended = true;
        continue;
      }
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(data);
      } catch {
        result.malformed = `unparsable SSE data: ${data.slice(0, 100)}`;
        continue;
      }
      if (parsed.error !== undefined || event === "error" || parsed.type === "error") {
        const shaped = errorShape(flavour, data);
        if (shaped) result.error = shaped;
        else result.malformed = `error not in the API's shape: ${data.slice(0, 100)}`;
        continue;
      }
      if (flavour === "openai") {
        const choice = (parsed.choices as { delta?: { content?: string } }[] | undefined)?.[0];
        result.text += choice?.delta?.content ?? "";
      } else if (parsed.type === "content_block_delta") {
        const delta = parsed.delta as { type?: string; text?: string };
        if (delta.type === "text_delta") result.text += delta.text ?? "";
      } else if (parsed.type === "message_stop") {
        result.ended = true;
      }
    }
  }
  return result;
}

export type Tally = Record<OutcomeKind, number>;

export function emptyTally(): Tally {
  return { completed: 0, failed: 0, connection_lost: 0, truncated: 0, duplicated: 0, malformed: 0, hung: 0 };
}

export interface LoadResult {
  outcomes: Outcome[];
  tally: Tally;
}

export interface LoadShape {
  /** Calls in all. */
  n: number;
  /** Calls in flight at most. */
  concurrency: number;
  /**
   * Call i starts no earlier than i × intervalMs after the load began: an arrival rate, so a fault that lasts a few
   * seconds meets the calls of those seconds rather than the whole load failing fast while it lasts.
   */
  intervalMs?: number;
}

/**
 * Runs the calls of `shape`; `callFor(i)` describes call i. Resolves when every call settled (each is bounded by its
 * own deadline, so the load is bounded too).
 */
export async function runLoad(shape: LoadShape, callFor: (i: number) => CallSpec): Promise<LoadResult> {
  const outcomes: Outcome[] = new Array(shape.n);
  const began = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < shape.n) {
      const i = next++;
      const wait = began + i * (shape.intervalMs ?? 0) - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const startedAt = performance.now();
      outcomes[i] = { ...await streamCall(callFor(i)), startedAt, endedAt: performance.now() };
    }
  };
  await Promise.all(Array.from({ length: Math.min(shape.n, shape.concurrency) }, lane));
  const tally = emptyTally();
  for (const o of outcomes) tally[o.kind]++;
  return { outcomes, tally };
}

/** Unique words for request `i` of a run: the first is an id no other answer contains. */
export function uniqueWords(run: string, i: number, count = 6): string[] {
  return [`${run}-${i}`, ...Array.from({ length: count - 1 }, (_, k) => `w${k}.${i}`)];
}
