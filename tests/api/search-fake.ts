/**
 * A local stand-in for Brave's web search API (what the tools worker's web_search calls) and a small web page,
 * both on 127.0.0.1, for tests of Anthropic's server tools through a real tools worker.
 */
import { type FixtureServer, fixtureServer } from "../tools/helpers.ts";

export const SEARCH_KEY = "brave-test-key";

/** Every query gets the same three results; one is on blocked.example, one has a page age. */
export function searchFake(): FixtureServer {
  return fixtureServer((request) => {
    const url = new URL(request.url);
    if (request.headers.get("x-subscription-token") !== SEARCH_KEY) return new Response("no", { status: 401 });
    const query = url.searchParams.get("q") ?? "";
    return Response.json({
      web: {
        results: [
          {
            title: `Auxot <strong>router</strong> for ${query}`,
            url: "https://auxot.example/docs",
            description: "Run open models on your own GPUs.",
            age: "3 days ago",
          },
          { title: "Blocked page", url: "https://blocked.example/page", description: "Should be filtered." },
          { title: "Second", url: "https://docs.example/second", description: "Another result" },
        ],
      },
    });
  });
}

/** A page for web_fetch. */
export function pageFake(): FixtureServer {
  return fixtureServer(() =>
    new Response("<html><head><title>Hello</title></head><body><h1>Hello page</h1><p>Plain words.</p></body></html>", {
      headers: { "content-type": "text/html" },
    })
  );
}
