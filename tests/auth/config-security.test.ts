/** Configuration with a security edge: tool credentials go to the tool they name, trusted proxies are named exactly. */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { TEST_ENV, testKeys } from "../helpers/router.ts";

Deno.test("tool credentials split at the last '__': MCP credentials never attach to a tool named mcp", async () => {
  const { env } = await testKeys();
  const config = loadConfig({
    ...TEST_ENV,
    ...env,
    AUXOT_TOOLS_MCP__GITHUB__CREATE_ISSUE__TOKEN: "ghp_x",
    AUXOT_TOOLS_WEB_SEARCH__BRAVE_SEARCH_API_KEY: "BSA_y",
  });
  assert.deepEqual(config.toolCredentials, {
    "mcp__github__create_issue": { TOKEN: "ghp_x" },
    "web_search": { BRAVE_SEARCH_API_KEY: "BSA_y" },
  });
});

Deno.test("AUXOT_TRUSTED_PROXY: a bad value stops start-up naming the variable", async () => {
  const { env } = await testKeys();
  assert.equal(loadConfig({ ...TEST_ENV, ...env, AUXOT_TRUSTED_PROXY: "fly" }).trustedProxy.kind, "header");
  assert.throws(
    () => loadConfig({ ...TEST_ENV, ...env, AUXOT_TRUSTED_PROXY: "everyone" }),
    (err) => err instanceof ConfigError && /AUXOT_TRUSTED_PROXY/.test(err.message),
  );
});
