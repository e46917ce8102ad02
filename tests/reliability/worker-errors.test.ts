/**
 * A malformed worker-protocol request (a 400 the worker is told about) is the worker's mistake, not the router's:
 * it must not be logged at error level, or a broken or hostile worker floods the operator's error log. Found by
 * this suite's fuzzing (src/app.ts logged every non-ApiError, and WorkerProtocolError is not one); kept as a
 * regression test.
 */
import assert from "node:assert/strict";
import { startDenoRouter } from "../helpers/router.ts";

Deno.test("reliability: a malformed worker request is answered 400 and not logged as a router error", async () => {
  const router = await startDenoRouter({ AUXOT_LOG_LEVEL: "info" });
  try {
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${router.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${router.keys.admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    };
    const poll = await post("/worker/v1/poll", { protocol: 1, worker: { id: 7 } });
    assert.equal(poll.status, 400);
    assert.equal(poll.body.error.code, "invalid_request");
    const events = await post("/worker/v1/jobs/some-job/events", { seq: -1 });
    assert.equal(events.status, 400);

    const errors = router.logs.filter((line) => line.includes('"level":"error"'));
    assert.deepEqual(errors, [], "a worker's 400 was logged as a router error");
  } finally {
    await router.close();
  }
});
