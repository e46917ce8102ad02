/** web_search never follows a redirect: the subscription token must not travel to wherever a 3xx points. */
import assert from "node:assert/strict";
import { createLogger } from "../../src/log.ts";
import { ToolError } from "../../workers/tools/tool.ts";
import { webSearchTool } from "../../workers/tools/web-search.ts";

Deno.test("web_search: a redirect is an error and the token never reaches its target", async () => {
  const seenByTarget: (string | null)[] = [];
  const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seenByTarget.push(request.headers.get("x-subscription-token"));
    return Response.json({ web: { results: [{ title: "leak", url: "https://x.example" }] } });
  });
  const redirector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.redirect(`http://127.0.0.1:${target.addr.port}/collect`, 302),
  );
  try {
    const tool = webSearchTool({ endpoint: `http://127.0.0.1:${redirector.addr.port}/res/v1/web/search` });
    await assert.rejects(
      tool.run({ query: "anything" }, {
        credentials: { BRAVE_SEARCH_API_KEY: "BSA-secret-token" },
        signal: new AbortController().signal,
        log: createLogger("error", () => {}),
      }),
      (err) => err instanceof ToolError && /redirect/.test(err.message),
    );
    assert.deepEqual(seenByTarget, [], "the redirect target was never contacted");
  } finally {
    await redirector.shutdown();
    await target.shutdown();
  }
});
