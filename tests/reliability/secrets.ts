/**
 * Secrets never reach a log: a full scenario at debug level — a router process on the Upstash store (REST token),
 * scripted workers (one killed with SIGKILL mid-load), a tools worker running web_search with a credential from the
 * router's environment against a fake search service, tool credentials that no tool uses (AUXOT_TOOLS_X__TOKEN),
 * wrong keys and a worker key used where it does not belong — then every line every process wrote, and the status
 * and metrics pages, are searched for every key, token and credential involved. None may appear.
 */
import assert from "node:assert/strict";
import { generateKey } from "../../src/auth/keys.ts";
import { eventually, testKeys } from "../helpers/router.ts";
import { startBackend } from "./backend.ts";
import { type Flavour, runLoad, type Tally, uniqueWords } from "./caller.ts";
import { FAULT_ENV, sleep } from "./faults.ts";
import { processGroup } from "./processes.ts";

export interface SecretsFigures {
  secrets: number;
  /** Log lines searched (every process), and of them at debug level. */
  lines: number;
  debugLines: number;
  /** Lines or pages that contained a secret (must be none). */
  leaks: string[];
  chatTally: Tally;
}

/** Runs the scenario and searches its output; throws only when the scenario itself could not run. */
export async function runSecretsScenario(requests = 40): Promise<SecretsFigures> {
  const keys = await testKeys();
  const backend = await startBackend("upstash");
  const group = processGroup();
  const searchToken = `brave_${crypto.randomUUID()}`;
  const unusedToolToken = `xtok_${crypto.randomUUID()}`;
  const tokensSeen: string[] = [];
  const search = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    tokensSeen.push(request.headers.get("x-subscription-token") ?? "");
    return Response.json({ web: { results: [{ title: "Auxot", url: "https://example.com/", description: "found" }] } });
  });
  const wrongKeys = [generateKey("api"), generateKey("admin"), `rtr_${crypto.randomUUID()}`];
  try {
    const router = await group.router({
      ...FAULT_ENV,
      ...keys.env,
      ...backend.env,
      AUXOT_LOG_LEVEL: "debug",
      AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY: searchToken,
      AUXOT_TOOLS_X__TOKEN: unusedToolToken,
    }, { name: "router" });
    const workers = await Promise.all(
      [0, 1].map((i) => group.worker(router.url, keys.admin, { slots: 4, tokenDelayMs: 10, name: `w${i}` })),
    );
    group.script("tools-worker", [
      "workers/tools/main.ts",
      "--builtins",
      "web_search",
      "--web-search-url",
      `http://127.0.0.1:${search.addr.port}/search`,
    ], { AUXOT_TOOLS_KEY: keys.tools, AUXOT_ROUTER_URL: router.url, AUXOT_LOG_LEVEL: "debug" });

    const headers = (key: string) => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });
    // Chat load with a worker killed mid-way: the fault paths log too.
    const load = runLoad({ n: requests, concurrency: 8, intervalMs: 30 }, (i) => ({
      url: router.url,
      key: keys.api,
      flavour: (i % 2 === 0 ? "openai" : "anthropic") as Flavour,
      words: uniqueWords("secret", i),
      thinkMs: 100,
      deadlineMs: 60_000,
    }));
    await sleep(400);
    await workers[0].kill();
    const { tally } = await load;

    // A tool call that carries the web_search credential to the tools worker and on to the search service.
    await eventually(
      async () => {
        const response = await fetch(`${router.url}/v1/tools`, { headers: headers(keys.api) });
        const body = await response.json() as { data?: { name: string }[] };
        return body.data?.some((t) => t.name === "web_search");
      },
      30_000,
      "the tools worker to offer web_search",
    );
    const executed = await fetch(`${router.url}/v1/tools/execute`, {
      method: "POST",
      headers: headers(keys.api),
      body: JSON.stringify({ name: "web_search", arguments: { query: "auxot" } }),
    });
    const result = await executed.json() as { content?: string; is_error?: boolean };
    assert.equal(result.is_error, false, JSON.stringify(result));
    assert.deepEqual(tokensSeen, [searchToken], "the credential reached the search service, once");

    // Wrong keys, and a worker key where an API key belongs: refused, and logged without the key.
    for (const key of [...wrongKeys, keys.admin]) {
      const response = await fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: headers(key),
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      await response.body?.cancel();
      assert.equal(response.status, 401);
    }
    const poll = await fetch(`${router.url}/worker/v1/poll`, {
      method: "POST",
      headers: headers(keys.api),
      body: JSON.stringify({ protocol: 1 }),
    });
    await poll.body?.cancel();
    assert.equal(poll.status, 401);

    const pages = await Promise.all(["/api/status", "/metrics"].map(async (path) => {
      const response = await fetch(`${router.url}${path}`, { headers: headers(keys.admin) });
      return `${path}: ${await response.text()}`;
    }));

    const secrets = [
      keys.admin,
      keys.api,
      keys.tools,
      ...backend.secrets,
      searchToken,
      unusedToolToken,
      ...wrongKeys,
    ];
    const lines = [...group.children.flatMap((c) => c.lines.map((l) => `${c.name}: ${l}`)), ...backend.logLines()];
    const leaks: string[] = [];
    for (const secret of secrets) {
      if (secret.length < 20) throw new Error("a secret too short to search for");
      for (const line of [...lines, ...pages]) if (line.includes(secret)) leaks.push(line.slice(0, 300));
    }
    return {
      secrets: secrets.length,
      lines: lines.length,
      debugLines: lines.filter((l) => l.includes('"level":"debug"')).length,
      leaks,
      chatTally: tally,
    };
  } finally {
    await group.closeAll();
    await backend.close();
    await search.shutdown();
  }
}
