/**
 * The floor for bench/rss-study.ts: a bare Deno.serve that reads the JSON body and answers the mock engine's
 * 16-word completion, so Deno's own memory under the same load is known apart from the router's.
 *
 *   deno run -A bench/lib/hello-serve.ts   (prints {"url": ..., "port": ...} when ready)
 */
const text = Array.from({ length: 16 }, (_, i) => `tok${i} `).join("");
const answer = new TextEncoder().encode(JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 0,
  model: "bench",
  choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
  usage: { prompt_tokens: 10, completion_tokens: 16, total_tokens: 26 },
}));

const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
  if (request.method === "POST") await request.json();
  return new Response(answer, { headers: { "content-type": "application/json" } });
});
console.log(JSON.stringify({ url: `http://127.0.0.1:${server.addr.port}`, port: server.addr.port }));
