/**
 * `deno task verify --router-url URL --api-key KEY`: checks a router end to end the way a caller uses it — health,
 * the models list with the API key, then one streaming chat completion — and prints time to first token, tokens/s
 * and wall time. When a step fails it says what to fix (router not running, wrong key, no worker connected...) and
 * exits with status 1. The key is read from --api-key or AUXOT_API_KEY and never printed.
 */
import { parseArgs } from "node:util";

const HELP = `Usage: deno task verify [--router-url URL] [--api-key KEY] [options]

  --router-url URL   the router (default: $AUXOT_ROUTER_URL or http://127.0.0.1:8080)
  --api-key KEY      an API key, rtr_… (default: $AUXOT_API_KEY)
  --prompt TEXT      the message to send (default: a short greeting)
  --max-tokens N     answer length limit (default: 64)
  --timeout SECONDS  give up on the streaming request after this long (default: 120)
  --help             this text
`;

class Failure extends Error {}

const MIN_TIMED_SECONDS = 0.05;

interface Health {
  status?: string;
  reason?: string;
  store?: string;
  policy?: { engine?: string; model?: string; quantization?: string };
  workers?: { total?: number; ready?: number; byKind?: Record<string, number> };
  slots?: { total?: number; free?: number };
  queue?: { depth?: number };
}

const say = (line: string) => console.log(line);
const ok = (line: string) => say(`  ✓ ${line}`);

function fail(problem: string, ...fixes: string[]): never {
  throw new Failure([`  ✗ ${problem}`, ...fixes.map((f) => `    → ${f}`)].join("\n"));
}

/** fetch with a timeout, turning network failures into advice. */
async function call(url: string, init: RequestInit, timeoutMs: number, base: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const text = String((err as Error)?.message ?? err) + String((err as { cause?: unknown })?.cause ?? "");
    if (/refused/i.test(text)) {
      fail(
        `Nothing is listening at ${base} (connection refused).`,
        "Start the router: `deno task start` (it listens on AUXOT_PORT, 8080 by default),",
        "or pass the right address with --router-url.",
      );
    }
    if (/dns|lookup|not known|getaddrinfo/i.test(text)) {
      fail(`Cannot resolve the host of ${base}.`, "Check the spelling of --router-url.");
    }
    if ((err as Error)?.name === "TimeoutError") {
      fail(`${url} did not answer within ${Math.round(timeoutMs / 1000)} s.`, "Check the router's logs and network.");
    }
    fail(`Cannot reach ${base}: ${text}`, "Check --router-url, TLS and any proxy in between.");
  }
}

function keyAdvice(key: string): string[] {
  if (key.startsWith("adm_")) return ["This is a worker key (adm_…); callers use the API key (rtr_…)."];
  if (key.startsWith("tls_")) return ["This is a tools-worker key (tls_…); callers use the API key (rtr_…)."];
  return [
    "Use the API key (rtr_…) printed by `deno task setup` or by the router's first run;",
    "the router holds only its hash (AUXOT_API_KEY_HASH): if the key was lost, run setup again and update the hash.",
  ];
}

async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { message?: string } | string };
    if (typeof body.error === "string") return body.error;
    if (body.error?.message) return body.error.message;
  } catch {
    // not JSON: show the start of the text
  }
  return text.slice(0, 200);
}

async function verify(base: string, key: string, prompt: string, maxTokens: number, timeoutMs: number) {
  say(`Checking ${base}`);

  // 1. Health: no key needed; says whether any worker can serve.
  const healthResponse = await call(`${base}/health`, {}, 10_000, base);
  const healthText = await healthResponse.text();
  let health: Health;
  try {
    health = JSON.parse(healthText) as Health;
  } catch {
    fail(
      `${base}/health answered ${healthResponse.status} with something that is not an Auxot router's health report.`,
      "Check --router-url (an Auxot router answers /health with JSON).",
    );
  }
  if (healthResponse.status === 503 || health.status === "error") {
    fail(`The router is up but unhealthy: ${health.reason ?? "status " + healthResponse.status}.`, "Check its logs.");
  }
  const model = health.policy?.model ?? "?";
  ok(
    `router is up (${health.store ?? "?"} store, model ${model}${
      health.policy?.quantization ? " " + health.policy.quantization : ""
    }); workers ready ${health.workers?.ready ?? 0}/${health.workers?.total ?? 0}, slots free ${
      health.slots?.free ?? 0
    }/${health.slots?.total ?? 0}, queued ${health.queue?.depth ?? 0}`,
  );

  // 2. The API key, on the models list.
  if (!key) {
    fail(
      "No API key given.",
      "Set AUXOT_API_KEY (`read -rs AUXOT_API_KEY && export AUXOT_API_KEY`, then paste rtr_…): a flag is visible in ps.",
    );
  }
  const models = await call(`${base}/v1/models`, { headers: { authorization: `Bearer ${key}` } }, 10_000, base);
  if (models.status === 401 || models.status === 403) {
    fail(`The router rejected the API key (${models.status}): ${await errorMessage(models)}`, ...keyAdvice(key));
  }
  if (models.status === 429) {
    fail("Too many failed key attempts from this address (429).", "Wait a minute, then retry with the right key.");
  }
  if (!models.ok) fail(`GET /v1/models answered ${models.status}: ${await errorMessage(models)}`);
  const list = await models.json() as { data?: { id: string }[] };
  ok(`API key accepted; models: ${(list.data ?? []).map((m) => m.id).join(", ") || "(none)"}`);

  // 3. A worker must be there, or the request would just wait in the queue.
  const serving = (health.workers?.total ?? 0) - (health.workers?.byKind?.tools ?? 0);
  const ready = health.workers?.ready ?? 0;
  if (serving === 0 || ready === 0) {
    const engine = health.policy?.engine === "cli" ? "cli" : "gpu";
    if (serving > 0) {
      fail(
        "Workers are connected but none has loaded the model yet (downloading or loading).",
        "Wait for the worker's log to say the model is loaded, then run verify again.",
      );
    }
    fail(
      "No worker is connected: requests would wait in the queue until one connects (AUXOT_QUEUE_TIMEOUT).",
      `Start a ${engine} worker on a machine with a GPU, with the worker key (adm_…):`,
      `  deno task worker:${engine} --router-url ${base} --gpu-key-file ~/.auxot/worker.key   # the key in a 0600 file`,
      "or install one as a service: `deno task worker:service install --help`. The dashboard is at " +
        `${base}/dashboard.`,
    );
  }

  // 4. One streaming request, timed.
  const started = performance.now();
  const response = await call(
    `${base}/v1/chat/completions`,
    {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: prompt }],
        max_tokens: maxTokens,
        stream: true,
        stream_options: { include_usage: true },
      }),
    },
    timeoutMs,
    base,
  );
  if (!response.ok) {
    const message = await errorMessage(response);
    if (response.status === 503 || response.status === 429) {
      fail(`The request was refused (${response.status}): ${message}`, "The fleet is busy or the queue timed out.");
    }
    fail(`The request failed (${response.status}): ${message}`);
  }
  const result = await readStream(response);
  const wall = performance.now() - started;
  if (result.error) fail(`The stream ended with an error: ${result.error}`);
  if (!result.done) fail("The stream ended without [DONE]: a proxy may have cut it, or the worker was lost.");
  if (result.firstTokenAt === undefined) fail("The answer was empty.", "Check the worker's logs.");

  const tokens = result.completionTokens ?? result.chunks;
  const generating = (result.lastTokenAt! - result.firstTokenAt) / 1000;
  // Workers post events in batches: a short answer can arrive in one burst, too fast to time.
  const speed = tokens > 1 && generating >= MIN_TIMED_SECONDS
    ? `${((tokens - 1) / generating).toFixed(1)} tokens/s`
    : "n/a (the answer arrived at once; ask for a longer one to measure it)";
  ok(`streamed ${tokens} tokens: "${result.text.trim().slice(0, 80)}${result.text.length > 80 ? "…" : ""}"`);
  say("");
  say(`  time to first token  ${ms(result.firstTokenAt - started)}`);
  say(`  generation speed     ${speed}`);
  say(`  wall time            ${ms(wall)}`);
  say("");
  say("All checks passed.");
}

interface StreamResult {
  text: string;
  chunks: number;
  firstTokenAt?: number;
  lastTokenAt?: number;
  completionTokens?: number;
  done: boolean;
  error?: string;
}

/** Reads an OpenAI chat-completions SSE stream, noting when content arrives. */
async function readStream(response: Response): Promise<StreamResult> {
  const result: StreamResult = { text: "", chunks: 0, done: false };
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of response.body!) {
    buffer += decoder.decode(bytes, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") {
        result.done = true;
        continue;
      }
      const chunk = JSON.parse(data) as {
        error?: { message?: string };
        choices?: { delta?: { content?: string | null; reasoning_content?: string | null } }[];
        usage?: { completion_tokens?: number } | null;
      };
      if (chunk.error) result.error = chunk.error.message ?? "unknown error";
      const delta = chunk.choices?.[0]?.delta;
      const piece = (delta?.content ?? "") + (delta?.reasoning_content ?? "");
      if (piece) {
        const now = performance.now();
        result.firstTokenAt ??= now;
        result.lastTokenAt = now;
        result.text += delta?.content ?? "";
        result.chunks++;
      }
      if (chunk.usage?.completion_tokens !== undefined) result.completionTokens = chunk.usage.completion_tokens;
    }
  }
  return result;
}

function ms(value: number): string {
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "router-url": { type: "string" },
      "api-key": { type: "string" },
      prompt: { type: "string" },
      "max-tokens": { type: "string" },
      timeout: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const base = (values["router-url"] ?? Deno.env.get("AUXOT_ROUTER_URL") ?? "http://127.0.0.1:8080").replace(
    /\/+$/,
    "",
  );
  if (!/^https?:\/\/[^/]+/.test(base)) {
    console.error(`  ✗ --router-url must be an http(s) URL, e.g. http://127.0.0.1:8080 (got ${base}).`);
    return 1;
  }
  const key = values["api-key"] ?? Deno.env.get("AUXOT_API_KEY") ?? "";
  const maxTokens = Number(values["max-tokens"] ?? 64);
  const timeoutMs = Number(values.timeout ?? 120) * 1000;
  try {
    await verify(base, key, values.prompt ?? "Say hello in five words.", maxTokens, timeoutMs);
    return 0;
  } catch (err) {
    if (err instanceof Failure) {
      console.log(err.message);
      return 1;
    }
    throw err;
  }
}

Deno.exit(await main());
