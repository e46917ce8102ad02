/**
 * The benchmark's mock OpenAI engine (a llama-server stand-in), lighter than tests/fixtures/mock-openai.ts: it keeps
 * nothing per request (a fixture that records every body grows by the gigabyte under a throughput run), caches its
 * non-streaming answers, and can pace a stream. The last message's text may say `tokens=N` (words to answer)
 * and `interval=MS` (pause between streamed words; the first word goes out at once), so every path — direct,
 * through the router and worker, through the peer gateway — gets the same answer from the same request body.
 *
 *   deno run -A bench/mock-engine.ts --port 0 --tokens 16   (prints {"url": ..., "port": ...} when ready)
 */
import { parseArgs } from "node:util";

interface Shape {
  tokens: number;
  intervalMs: number;
}

const encoder = new TextEncoder();

function shapeOf(body: { messages?: { content?: unknown }[]; prompt?: unknown }, defaultTokens: number): Shape {
  const last = body.messages?.at(-1)?.content ?? body.prompt;
  const text = typeof last === "string" ? last : JSON.stringify(last ?? "");
  const tokens = /tokens=(\d+)/.exec(text);
  const interval = /interval=(\d+(?:\.\d+)?)/.exec(text);
  return {
    tokens: tokens ? Math.min(100_000, Number(tokens[1])) : defaultTokens,
    intervalMs: interval ? Number(interval[1]) : 0,
  };
}

const usage = (n: number) => ({
  prompt_tokens: 10,
  completion_tokens: n,
  total_tokens: 10 + n,
  prompt_tokens_details: { cached_tokens: 0 },
});

const jsonCache = new Map<number, Uint8Array<ArrayBuffer>>();

function completionJson(n: number): Uint8Array<ArrayBuffer> {
  let cached = jsonCache.get(n);
  if (!cached) {
    const text = Array.from({ length: n }, (_, i) => `tok${i} `).join("");
    cached = encoder.encode(JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion",
      created: 0,
      model: "bench",
      choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
      usage: usage(n),
    }));
    if (jsonCache.size < 64) jsonCache.set(n, cached);
  }
  return cached;
}

const frame = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);
const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
  id: "chatcmpl-bench",
  object: "chat.completion.chunk",
  created: 0,
  model: "bench",
  choices: [{ index: 0, delta, finish_reason: finish }],
});

function completionStream(shape: Shape, includeUsage: boolean): ReadableStream<Uint8Array> {
  let i = 0;
  let ended = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(frame(chunk({ role: "assistant", content: "" })));
    },
    async pull(controller) {
      if (ended) return;
      if (i < shape.tokens) {
        if (i > 0 && shape.intervalMs > 0) await new Promise((r) => setTimeout(r, shape.intervalMs));
        if (shape.intervalMs > 0) {
          controller.enqueue(frame(chunk({ content: `tok${i} ` })));
          i++;
        } else {
          // Unpaced: all words in one write, as a fast engine's socket would deliver them.
          const parts: Uint8Array[] = [];
          for (; i < shape.tokens; i++) parts.push(frame(chunk({ content: `tok${i} ` })));
          controller.enqueue(concat(parts));
        }
        return;
      }
      const tail = [frame(chunk({}, "stop"))];
      if (includeUsage) tail.push(frame({ ...chunk({}), choices: [], usage: usage(shape.tokens) }));
      tail.push(encoder.encode("data: [DONE]\n\n"));
      controller.enqueue(concat(tail));
      ended = true;
      controller.close();
    },
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function startMockEngine(options: { port?: number; tokens?: number } = {}) {
  const defaultTokens = options.tokens ?? 16;
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, signal: controller.signal, onListen: () => {} },
    async (request) => {
      if (request.method !== "POST" || !new URL(request.url).pathname.endsWith("/chat/completions")) {
        return new Response("not found", { status: 404 });
      }
      const body = await request.json();
      const shape = shapeOf(body, defaultTokens);
      if (!body.stream) {
        return new Response(completionJson(shape.tokens), { headers: { "content-type": "application/json" } });
      }
      return new Response(completionStream(shape, body.stream_options?.include_usage === true), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    close: async () => {
      controller.abort();
      await server.finished;
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" }, tokens: { type: "string" } } });
  const mock = startMockEngine({ port: Number(values.port ?? 0), tokens: Number(values.tokens ?? 16) });
  console.log(JSON.stringify({ url: mock.url, port: mock.port }));
}
