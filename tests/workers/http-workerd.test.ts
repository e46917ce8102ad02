/**
 * The HTTP-level suite (tests/api/http-suite.ts) against the real router bundle under real workerd, with the Upstash
 * store on a real redis-server behind the Upstash REST bridge. The bundle is built once; each test gets a fresh
 * workerd and an empty database.
 */
import { startWorkersStack, type WorkersStack } from "../fixtures/workers-stack.ts";
import { httpSuite } from "../api/http-suite.ts";
import { type RouterTarget, TEST_ENV, testKeys } from "../helpers/router.ts";

let stack: Promise<WorkersStack> | undefined;

httpSuite("workerd", async (env = {}): Promise<RouterTarget> => {
  const s = await (stack ??= startWorkersStack());
  await s.flush();
  const keys = await testKeys();
  const instance = await s.startRouter({ ...TEST_ENV, ...keys.env, ...env });
  return {
    kind: "workerd",
    url: instance.url,
    keys,
    get logs() {
      return instance.logs().split("\n");
    },
    close: () => instance.stop(),
  };
});

// Registered last: the suite's shared redis-server, bridge and bundle go away after every test above.
Deno.test({ name: "workerd: teardown", sanitizeOps: false, sanitizeResources: false }, async () => {
  if (stack) await (await stack).close();
});
