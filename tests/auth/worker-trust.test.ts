/**
 * Worker trust: a job's events, lease extensions and cancel notices belong to the worker it was handed to, proven by
 * the lease token of that claim — not by a worker id anyone can send. Each rule is checked over HTTP against a real
 * router: the refusal (403/409) and that nothing changed (no event stored, the caller still waiting, the notice still
 * there for the rightful worker). Then the bounds an authenticated worker meets: events and bytes per job, worker ids
 * per key, tool schemas per worker.
 */
import assert from "node:assert/strict";
import { generateKey, hashKey, parsePhc } from "../../src/auth/keys.ts";
import { LeaseTokens } from "../../src/auth/lease-token.ts";
import { WORKER_BOUNDS } from "../../src/dispatch/worker-bounds.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { eventually, type RouterTarget, startDenoRouter } from "../helpers/router.ts";

interface Claimed {
  id: string;
  leaseToken: string;
  attempt: number;
}

function post(t: RouterTarget, path: string, body: unknown, key: string) {
  return fetch(`${t.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
}

function poll(t: RouterTarget, id: string, extra: Record<string, unknown> = {}, key = t.keys.admin, free = 1) {
  return (async () => {
    const first = await post(t, "/worker/v1/poll", {
      protocol: PROTOCOL_VERSION,
      worker: { id, kind: "gpu", slots: 1, free: 0 },
      waitMs: 0,
    }, key);
    const version = first.body.policy?.version;
    return await post(t, "/worker/v1/poll", {
      protocol: PROTOCOL_VERSION,
      worker: { id, kind: "gpu", slots: 1, free, loaded: { policyVersion: version, model: "m" } },
      waitMs: 0,
      ...extra,
    }, key);
  })();
}

/** A pending caller request and the job worker `workerId` claimed for it. */
async function claimJob(t: RouterTarget, workerId: string) {
  const caller = new AbortController();
  const answer = fetch(`${t.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
    signal: caller.signal,
  }).then(async (r) => ({ status: r.status, body: await r.json() }), () => undefined);
  const job: Claimed = await eventually(async () => (await poll(t, workerId)).body.jobs?.[0]);
  return { job, answer, caller };
}

async function storedEvents(t: RouterTarget, jobId: string) {
  return (await t.store!.readEvents(jobId, "", 0)).events;
}

const text = (s: string) => [{ type: "text", text: s }];

Deno.test("worker trust: events only with the claim's lease token, from the claiming role", async () => {
  const t = await startDenoRouter();
  try {
    const { job, answer } = await claimJob(t, "worker-a-1234");
    assert.match(job.leaseToken, /^lt1\.1\.a\./);
    const events = (body: Record<string, unknown>, key = t.keys.admin) =>
      post(t, `/worker/v1/jobs/${job.id}/events`, { seq: 0, events: text("hijacked"), ...body }, key);

    // No token, a made-up token, A's token under another worker id, and another job's token: all 409.
    const missing = await events({ workerId: "worker-a-1234" });
    assert.equal(missing.status, 400, "the token is a required field");
    const forged = await events({ workerId: "worker-a-1234", leaseToken: `lt1.1.a.${"A".repeat(43)}` });
    assert.equal(forged.status, 409);
    assert.equal(forged.body.error.code, "invalid_lease");
    const borrowed = await events({ workerId: "worker-b-1234", leaseToken: job.leaseToken });
    assert.equal(borrowed.status, 409, "a token is bound to the worker id it was issued to");
    const { job: other } = await claimJob(t, "worker-b-1234");
    const crossed = await events({ workerId: "worker-b-1234", leaseToken: other.leaseToken });
    assert.equal(crossed.status, 409, "a token is bound to its job");
    const attempt = await events({ workerId: "worker-a-1234", leaseToken: job.leaseToken.replace("lt1.1.", "lt1.2.") });
    assert.equal(attempt.status, 409, "and to its attempt");
    // The right token under a tools key: the wrong role.
    const wrongRole = await events({ workerId: "worker-a-1234", leaseToken: job.leaseToken }, t.keys.tools);
    assert.equal(wrongRole.status, 403);
    assert.equal(wrongRole.body.error.code, "wrong_role");
    assert.deepEqual(await storedEvents(t, job.id), [], "nothing was stored for any of them");

    // The rightful worker still can.
    const ok = await events({
      workerId: "worker-a-1234",
      leaseToken: job.leaseToken,
      events: [{ type: "start", model: "m" }, ...text("mine"), { type: "done", finishReason: "stop" }],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const reply = await answer;
    assert.equal(reply?.body.choices[0].message.content, "mine");
  } finally {
    await t.close();
  }
});

Deno.test("worker trust: lease extensions and cancel notices only for jobs whose token the poller holds", async () => {
  const t = await startDenoRouter();
  try {
    const { job, caller } = await claimJob(t, "worker-a-5678");
    // Another worker (same key) names A's job, with no token or A's token under its own id: told to drop it.
    for (const leases of [{}, { [job.id]: job.leaseToken }]) {
      const intruder = await poll(t, "worker-b-5678", { activeJobs: [job.id], leases }, t.keys.admin, 0);
      assert.equal(intruder.status, 200);
      assert.deepEqual(intruder.body.cancelled, [job.id], "not its job: told to stop, nothing extended");
    }
    // Even posing as A by id, without A's token it learns nothing and takes nothing.
    caller.abort();
    await eventually(async () => (await t.store!.readEvents(job.id, "", 0)).state === "cancelled");
    const impostor = await poll(t, "worker-a-5678", { activeJobs: [job.id], leases: {} }, t.keys.admin, 0);
    assert.deepEqual(impostor.body.cancelled, [job.id]);
    // The notice is still there for A, which proves its lease with its token.
    const rightful = await poll(
      t,
      "worker-a-5678",
      {
        activeJobs: [job.id],
        leases: { [job.id]: job.leaseToken },
      },
      t.keys.admin,
      0,
    );
    assert.deepEqual(rightful.body.cancelled, [job.id]);
  } finally {
    await t.close();
  }
});

Deno.test("lease tokens: bound to job, worker, attempt, role and deployment", async () => {
  const hashes = { admin: parsePhc(await hashKey(generateKey("admin")))! };
  const tokens = new LeaseTokens(hashes);
  const tool = await tokens.issue("job-1", "tools-1", 1, "tools");
  assert.equal(await tokens.check(tool, "job-1", "tools-1", "tools"), "ok");
  assert.equal(await tokens.check(tool, "job-1", "tools-1", "admin"), "wrong_role", "a tool job refuses adm_ keys");
  const chat = await tokens.issue("job-2", "gpu-1", 3, "admin");
  assert.equal(await tokens.check(chat, "job-2", "gpu-1", "tools"), "wrong_role", "a chat job refuses tls_ keys");
  assert.equal(await tokens.check(chat, "job-2", "gpu-2", "admin"), "invalid");
  assert.equal(await tokens.check(chat.replace(".3.", ".4."), "job-2", "gpu-1", "admin"), "invalid");
  assert.equal(await tokens.check(chat.replace(".a.", ".t."), "job-2", "gpu-1", "tools"), "invalid");
  assert.equal(await tokens.check(undefined, "job-2", "gpu-1", "admin"), "invalid");
  const elsewhere = new LeaseTokens({ admin: parsePhc(await hashKey(generateKey("admin")))! });
  assert.equal(await elsewhere.check(chat, "job-2", "gpu-1", "admin"), "invalid", "another deployment's secret");
});

Deno.test("bounds: events and bytes per job end the job with an explicit error (413)", async () => {
  const t = await startDenoRouter();
  try {
    const { job, answer } = await claimJob(t, "worker-big-1234");
    const events = (seq: number, evs: unknown[]) =>
      post(t, `/worker/v1/jobs/${job.id}/events`, {
        workerId: "worker-big-1234",
        leaseToken: job.leaseToken,
        seq,
        events: evs,
      }, t.keys.admin);
    const tooMany = await events(WORKER_BOUNDS.maxEventsPerJob, text("x"));
    assert.equal(tooMany.status, 413);
    assert.equal(tooMany.body.error.code, "job_too_large");
    const chunk = "y".repeat(WORKER_BOUNDS.maxEventsPostBytes - 1024);
    let seq = 0;
    let last = { status: 200, body: {} as Record<string, unknown> };
    for (let i = 0; i < 16 && last.status === 200; i++, seq++) last = await events(seq, text(chunk));
    assert.equal(last.status, 413, "the job passed its byte bound");
    assert.ok(seq * chunk.length <= WORKER_BOUNDS.maxBytesPerJob + chunk.length);
    const reply = await answer;
    assert.equal(reply?.status, 500);
    assert.match(JSON.stringify(reply?.body), /bound/, "the caller is told why");
    const oversize = await events(seq, text("z".repeat(WORKER_BOUNDS.maxEventsPostBytes + 1)));
    assert.equal(oversize.status, 413, "one post past its own bound");
  } finally {
    await t.close();
  }
});

Deno.test("bounds: worker ids per key and tool schemas per worker", async () => {
  const t = await startDenoRouter();
  try {
    const limit = WORKER_BOUNDS.maxWorkerIdsPerKey.tools;
    const tools = (id: string, toolList: unknown[] = []) =>
      post(t, "/worker/v1/poll", {
        protocol: PROTOCOL_VERSION,
        worker: { id, kind: "tools", slots: 1, free: 0, tools: toolList },
        waitMs: 0,
      }, t.keys.tools);
    for (let i = 0; i < limit; i++) assert.equal((await tools(`tools-worker-${i}`)).status, 200);
    const extra = await tools("tools-worker-extra");
    assert.equal(extra.status, 429);
    assert.equal(extra.body.error.code, "too_many_workers");
    assert.equal((await tools("tools-worker-0")).status, 200, "known ids go on polling");
    const huge = Array.from({ length: 8 }, (_, i) => ({
      name: `t${i}`,
      description: "d".repeat(40_000),
      parameters: { type: "object" },
    }));
    const schemas = await tools("tools-worker-1", huge);
    assert.equal(schemas.status, 413);
    assert.equal(schemas.body.error.code, "tool_schemas_too_large");
  } finally {
    await t.close();
  }
});
