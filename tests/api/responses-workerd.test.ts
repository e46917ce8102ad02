/**
 * The Responses API suite (responses-suite.ts) against the real router bundle under real workerd, with the Upstash
 * store on a real redis-server behind the Upstash REST bridge, as tests/workers/http-workerd.test.ts does.
 */
import { startWorkersStack, type WorkersStack } from "../fixtures/workers-stack.ts";
import { type RouterTarget, TEST_ENV, testKeys } from "../helpers/router.ts";
import { responsesSuite } from "./responses-suite.ts";

let stack: Promise<WorkersStack> | undefined;

responsesSuite("workerd", async (env = {}): Promise<RouterTarget> => {
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
