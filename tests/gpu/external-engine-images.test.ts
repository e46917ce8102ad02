/**
 * External engine mode: a caller's image URL is fetched by the worker through web_fetch's SSRF guard and handed to
 * the engine as a data: URL — the engine (which would fetch from the GPU host's network) never sees the URL.
 */
import assert from "node:assert/strict";
import type { ChatJob } from "../../src/protocol/worker-protocol.ts";
import { ExternalEngine } from "../../workers/gpu/external-engine.ts";
import { AllowList } from "../../workers/tools/net-guard.ts";
import { startMockOpenAI } from "../fixtures/mock-openai.ts";

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);

function imageJob(url: string): ChatJob {
  return {
    id: "job-img",
    kind: "chat",
    mode: "generate",
    attempt: 1,
    deadlineMs: 30_000,
    request: {
      requestedModel: "m",
      messages: [{ role: "user", content: [{ type: "text", text: "what is this" }, { type: "image", url }] }],
      tools: [],
      toolChoice: "auto",
      stop: [],
    },
  } as ChatJob;
}

Deno.test({
  name: "external engine: images are fetched through the SSRF guard and inlined; the engine never gets a URL",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const mock = startMockOpenAI({ tokens: 2 });
  const images = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/to-metadata") return Response.redirect("http://169.254.169.254/latest/meta-data/", 302);
    return new Response(PNG, { headers: { "content-type": "image/png" } });
  });
  const imageUrl = `http://127.0.0.1:${images.addr.port}/cat.png`;
  const events: unknown[] = [];
  const sink = { emit: (e: unknown) => events.push(e) };
  try {
    // Loopback is not public: refused, and the engine is never called.
    const guarded = new ExternalEngine({ url: mock.url, slots: 1, model: "e" });
    await assert.rejects(guarded.run(imageJob(imageUrl), sink, new AbortController().signal), /loopback/);
    assert.equal(mock.received.length, 0);

    // Permitted by the allow-list: fetched by the worker, sent as a data: URL.
    const allowed = new ExternalEngine({
      url: mock.url,
      slots: 1,
      model: "e",
      images: { allow: AllowList.parse(`127.0.0.1:${images.addr.port}`) },
    });
    await allowed.run(imageJob(imageUrl), sink, new AbortController().signal);
    const sent = JSON.stringify(mock.received[0].messages);
    assert.ok(!sent.includes("127.0.0.1"), "the engine never sees the URL");
    assert.ok(sent.includes(`data:image/png;base64,${btoa(String.fromCharCode(...PNG))}`), sent);

    // A redirect from a permitted host to cloud metadata is checked again, and refused.
    await assert.rejects(
      allowed.run(
        imageJob(`http://127.0.0.1:${images.addr.port}/to-metadata`),
        sink,
        new AbortController().signal,
      ),
      /169\.254\.169\.254.*link-local/,
    );
    await assert.rejects(allowed.run(imageJob("file:///etc/passwd"), sink, new AbortController().signal), /file:/);
    assert.equal(mock.received.length, 1);
  } finally {
    await images.shutdown();
    await mock.close();
  }
});
