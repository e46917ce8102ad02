/**
 * The HTTP-level suite: the router driven over real HTTP by the official `openai` client, curl and raw fetch, with
 * real long-polling workers (scripted engine). The same suite runs against the router under Deno
 * (tests/api/http-deno.test.ts) and under workerd (tests/workers/http-workerd.test.ts).
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { FatalWorkerError } from "../../workers/common/worker-loop.ts";
import { eventually, type MakeTarget, type RouterTarget, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

const user = (text: string) => [{ role: "user" as const, content: text }];

export function httpSuite(name: string, makeTarget: MakeTarget): void {
  // HTTP clients keep pooled sockets open between tests; leaks of timers/ops are checked by the reliability suite.
  const test = (title: string, fn: (t: RouterTarget, client: OpenAI) => Promise<void>, env = {}) =>
    Deno.test({ name: `${name}: ${title}`, sanitizeOps: false, sanitizeResources: false }, async () => {
      const target = await makeTarget(env);
      const client = new OpenAI({ apiKey: target.keys.api, baseURL: `${target.url}/v1`, maxRetries: 0 });
      try {
        await fn(target, client);
      } finally {
        await target.close();
      }
    });
  const withWorker = async (t: RouterTarget, engine: ScriptedEngine, fn: () => Promise<void>) => {
    const worker = startWorker(t, engine, { key: t.keys.admin });
    try {
      await fn();
    } finally {
      await worker.stop();
    }
  };

  test("non-streaming chat completion through a long-polling worker", async (t, client) => {
    const engine = new ScriptedEngine();
    await withWorker(t, engine, async () => {
      const completion = await client.chat.completions.create({
        model: "anything",
        messages: user("echo hello there world"),
      });
      assert.equal(completion.object, "chat.completion");
      assert.equal(completion.choices[0].message.content, "hello there world");
      assert.equal(completion.choices[0].finish_reason, "stop");
      assert.equal(completion.usage?.completion_tokens, 3);
      assert.equal(completion.usage?.prompt_tokens_details?.cached_tokens, 0);
      assert.equal(completion.model, "scripted");
    });
  });

  test("streaming: role chunk, content deltas, finish_reason, usage only when asked, [DONE]", async (t, client) => {
    await withWorker(t, new ScriptedEngine(), async () => {
      const stream = await client.chat.completions.create({
        model: "m",
        messages: user("echo one two three"),
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.equal(chunks[0].choices[0].delta.role, "assistant");
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
      assert.equal(text, "one two three");
      assert.equal(chunks.at(-2)?.choices[0].finish_reason, "stop");
      assert.deepEqual(chunks.at(-1)?.choices, []);
      assert.equal(chunks.at(-1)?.usage?.completion_tokens, 3);

      const plain = await client.chat.completions.create({ model: "m", messages: user("echo x"), stream: true });
      const plainChunks = [];
      for await (const chunk of plain) plainChunks.push(chunk);
      assert.ok(plainChunks.every((c) => !c.usage), "no usage without stream_options.include_usage");
    });
  });

  test("tool calls stream as deltas (index/id/name first, then argument fragments)", async (t, client) => {
    await withWorker(t, new ScriptedEngine(), async () => {
      const tools = [{
        type: "function" as const,
        function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
      }];
      const stream = await client.chat.completions.create({
        model: "m",
        messages: user('tool get_weather {"city":"Paris"}'),
        tools,
        stream: true,
      });
      const deltas = [];
      let finish;
      for await (const chunk of stream) {
        for (const d of chunk.choices[0]?.delta.tool_calls ?? []) deltas.push(d);
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(deltas[0].index, 0);
      assert.ok(deltas[0].id);
      assert.equal(deltas[0].function?.name, "get_weather");
      assert.ok(deltas.length > 2, "arguments arrive in several fragments");
      assert.deepEqual(JSON.parse(deltas.map((d) => d.function?.arguments ?? "").join("")), { city: "Paris" });
      assert.equal(finish, "tool_calls");

      const whole = await client.chat.completions.create({
        model: "m",
        messages: user('tool get_weather {"city":"Oslo"}'),
        tools,
      });
      assert.equal(whole.choices[0].finish_reason, "tool_calls");
      assert.equal(whole.choices[0].message.content, null);
      assert.deepEqual(
        JSON.parse(
          whole.choices[0].message.tool_calls![0].type === "function"
            ? (whole.choices[0].message.tool_calls![0] as { function: { arguments: string } }).function.arguments
            : "",
        ),
        { city: "Oslo" },
      );
    });
  });

  test("parameters reach the worker; max_tokens yields finish_reason length", async (t, client) => {
    const engine = new ScriptedEngine();
    await withWorker(t, engine, async () => {
      const completion = await client.chat.completions.create({
        model: "m",
        messages: [{ role: "system", content: "be brief" }, ...user("words 10")],
        max_completion_tokens: 4,
        temperature: 0.3,
        top_p: 0.9,
        seed: 42,
        stop: ["END"],
        response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } },
        reasoning_effort: "low",
      });
      assert.equal(completion.choices[0].finish_reason, "length");
      assert.equal(completion.choices[0].message.content, "w0 w1 w2 w3 ");
      const job = engine.received.at(-1)!;
      assert.equal(job.request.maxTokens, 4);
      assert.equal(job.request.temperature, 0.3);
      assert.equal(job.request.topP, 0.9);
      assert.equal(job.request.seed, 42);
      assert.deepEqual(job.request.stop, ["END"]);
      assert.deepEqual(job.request.responseFormat, { type: "json_schema", name: "x", schema: { type: "object" } });
      assert.deepEqual(job.request.reasoning, { enabled: true, effort: "low" });
      assert.equal(job.request.messages[0].role, "system");
    });
  });

  test("what cannot be honoured is refused with a 400 naming the parameter", async (_t, client) => {
    for (
      const [param, extra] of [["n", { n: 2 }], ["logprobs", { logprobs: true }], ["frequency_penalty", {
        frequency_penalty: 0.5,
      }]] as const
    ) {
      const err = await client.chat.completions.create({ model: "m", messages: user("hi"), ...extra } as never).catch((
        e,
      ) => e);
      assert.ok(err instanceof OpenAI.BadRequestError, `${param}: ${err}`);
      assert.equal((err.error as { param?: string }).param, param);
    }
    const bad = await client.chat.completions.create({ model: "m", messages: [] }).catch((e) => e);
    assert.ok(bad instanceof OpenAI.BadRequestError);
    assert.match(bad.message, /messages/);
  });

  test("authentication: missing, wrong and wrong-role keys get 401 in OpenAI's shape", async (t) => {
    const post = (key?: string) =>
      fetch(`${t.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ model: "m", messages: user("hi") }),
      });
    const wrong = t.keys.api.slice(0, -4) + "AAAA";
    for (const key of [undefined, "nonsense", wrong, t.keys.admin, t.keys.tools]) {
      const response = await post(key);
      assert.equal(response.status, 401, String(key?.slice(0, 4)));
      const body = await response.json();
      assert.equal(body.error.type, "authentication_error");
      assert.equal(typeof body.error.message, "string");
    }
    // The API key does not open the worker endpoints either.
    const poll = await fetch(`${t.url}/worker/v1/poll`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.keys.api}` },
      body: "{}",
    });
    assert.equal(poll.status, 401);
    assert.equal((await poll.json()).fatal, true);
  });

  test("bad JSON, oversize bodies, unknown routes: errors in OpenAI's JSON shape", async (t) => {
    const headers = { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" };
    const badJson = await fetch(`${t.url}/v1/chat/completions`, { method: "POST", headers, body: "{nope" });
    assert.equal(badJson.status, 400);
    assert.equal((await badJson.json()).error.type, "invalid_request_error");
    const big = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "m", messages: user("x".repeat(70_000)) }),
    });
    assert.equal(big.status, 413);
    assert.ok((await big.json()).error.message.includes("AUXOT_MAX_BODY_BYTES"));
    const deep = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: "[".repeat(5000) + "]".repeat(5000),
    });
    assert.equal(deep.status, 400);
    await deep.body?.cancel();
    const missing = await fetch(`${t.url}/v1/nothing-here`, { headers });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.type, "not_found_error");
    // A known endpoint asked with the wrong method: 405 naming the method, and what it allows.
    const wrongMethod = await fetch(`${t.url}/v1/chat/completions`, { headers });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
    const wrong = (await wrongMethod.json()).error;
    assert.equal(wrong.type, "invalid_request_error");
    assert.equal(wrong.message, "Invalid method for URL (GET /v1/chat/completions)");
    const embeddings = await fetch(`${t.url}/v1/embeddings`, { method: "POST", headers, body: "{}" });
    assert.equal(embeddings.status, 501);
    assert.ok((await embeddings.json()).error.message);
  }, { AUXOT_MAX_BODY_BYTES: "65536" });

  test("models, legacy completions, HEAD and /health", async (t, client) => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["custom:tiny-test"]);
    const head = await fetch(`${t.url}/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    const idle = await (await fetch(`${t.url}/health`)).json();
    assert.equal(idle.workers.total, 0);
    assert.match(idle.reason, /no worker/);
    assert.equal(JSON.stringify(idle).includes("argon2"), false);
    await withWorker(t, new ScriptedEngine(), async () => {
      const legacy = await client.completions.create({ model: "m", prompt: "echo legacy text", max_tokens: 10 });
      assert.equal(legacy.object, "text_completion");
      assert.equal(legacy.choices[0].text, "legacy text");
      const health = await eventually(async () => {
        const h = await (await fetch(`${t.url}/health`)).json();
        return h.workers.ready === 1 ? h : undefined;
      });
      assert.equal(health.slots.total, 2);
      assert.equal(health.status, "ok");
    });
  });

  test("curl streams SSE with a Bearer key", async (t) => {
    await withWorker(t, new ScriptedEngine(), async () => {
      const curl = new Deno.Command("curl", {
        args: [
          "-sN",
          `${t.url}/v1/chat/completions`,
          "-H",
          `Authorization: Bearer ${t.keys.api}`,
          "-H",
          "content-type: application/json",
          "-d",
          JSON.stringify({ model: "m", stream: true, messages: user("echo via curl") }),
        ],
        stdout: "piped",
      });
      const out = new TextDecoder().decode((await curl.output()).stdout);
      const data = out.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      assert.equal(data.at(-1), "[DONE]");
      const text = data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? "").join("");
      assert.equal(text, "via curl");
    });
  });

  test("a caller that leaves cancels its job and the worker hears of it", async (t) => {
    const engine = new ScriptedEngine();
    await withWorker(t, engine, async () => {
      const controller = new AbortController();
      const response = fetch(`${t.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", stream: true, messages: user("hang") }),
        signal: controller.signal,
      });
      await eventually(() => engine.received.length === 1, 10_000, "the job to reach the worker");
      controller.abort();
      await response.catch(() => {});
      await eventually(() => engine.cancelled.length === 1, 10_000, "the cancel to reach the worker");
      // The slot is free again: the next request is served.
      const next = await fetch(`${t.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: user("echo again") }),
      });
      assert.equal((await next.json()).choices[0].message.content, "again");
    });
  });

  test("with every slot busy, requests queue and are served in order", async (t, client) => {
    const engine = new ScriptedEngine({ slots: 1 });
    await withWorker(t, engine, async () => {
      const first = client.chat.completions.create({ model: "m", messages: user("slow 300 first") });
      await eventually(() => engine.received.length === 1);
      const rest = [];
      for (const word of ["second", "third", "fourth"]) {
        rest.push(client.chat.completions.create({ model: "m", messages: user(`echo ${word}`) }));
        await eventually(async () => {
          const h = await (await fetch(`${t.url}/health`)).json();
          return h.queue.depth === rest.length;
        });
      }
      const answers = await Promise.all([first, ...rest]);
      assert.deepEqual(answers.map((a) => a.choices[0].message.content?.trim()), [
        "first",
        "second",
        "third",
        "fourth",
      ]);
      const order = engine.received.map((j) =>
        (j.request.messages[0].content[0] as { text: string }).text.split(" ").at(-1)
      );
      assert.deepEqual(order, ["first", "second", "third", "fourth"]);
    });
  });

  test("AUXOT_JOB_TIMEOUT ends a job with a 504, never a normal-looking stop", async (t, client) => {
    const engine = new ScriptedEngine();
    await withWorker(t, engine, async () => {
      const err = await client.chat.completions.create({ model: "m", messages: user("hang") }).catch((e) => e);
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.status, 504);
      await eventually(() => engine.cancelled.length === 1, 10_000, "the worker to stop the timed-out job");
      const stream = await client.chat.completions.create({
        model: "m",
        messages: user("slow 200 a b c d e f g h i j k l m n o p"),
        stream: true,
        max_tokens: 100,
      })
        .catch((e) => e);
      // Either the timeout hit before the first token (HTTP 504) or mid-stream (an error event, no finish_reason).
      if (stream instanceof Error) assert.equal((stream as InstanceType<typeof OpenAI.APIError>).status, 504);
    });
  }, { AUXOT_JOB_TIMEOUT: "1500ms" });

  test("with no worker, a request waits (bounded) and then fails with a clear 503", async (_t, client) => {
    const err = await client.chat.completions.create({ model: "m", messages: user("hi") }).catch((e) => e);
    assert.ok(err instanceof OpenAI.APIError);
    assert.equal(err.status, 503);
    assert.match(err.message, /no worker/i);
  }, { AUXOT_QUEUE_TIMEOUT: "800ms" });

  test("a lease lost before output re-queues the job; it completes on another worker", async (t, client) => {
    // A "frozen" worker: claims a job through the raw protocol, then never posts or polls again.
    const policy = await pollRaw(t, "frozen-worker-1", 0);
    const pending = client.chat.completions.create({ model: "m", messages: user("echo survived") });
    const claimed = await eventually(async () => {
      const r = await pollRaw(t, "frozen-worker-1", 1, policy.version);
      return r.jobs.length ? r.jobs : undefined;
    });
    assert.equal(claimed.length, 1);
    const engine = new ScriptedEngine();
    await withWorker(t, engine, async () => {
      const completion = await pending;
      assert.equal(completion.choices[0].message.content, "survived");
      assert.equal(engine.received[0].attempt, 2);
    });
    // The frozen worker's late post is refused.
    const late = await postEvents(t, claimed[0], "frozen-worker-1", 0, [{ type: "text", text: "zombie" }]);
    assert.equal(late.status, 409);
  }, { AUXOT_LEASE_TIMEOUT: "1s" });

  test("a lease lost after output fails the request explicitly, with no duplicated output", async (t) => {
    const policy = await pollRaw(t, "dying-worker-1", 0);
    const response = fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", stream: true, messages: user("anything") }),
    });
    const [job] = await eventually(async () => {
      const r = await pollRaw(t, "dying-worker-1", 1, policy.version);
      return r.jobs.length ? r.jobs : undefined;
    });
    assert.equal(
      (await postEvents(t, job, "dying-worker-1", 0, [{ type: "start", model: "x" }, {
        type: "text",
        text: "partial",
      }])).status,
      200,
    );
    const text = await (await response).text();
    const data = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
    assert.equal(data.filter((d) => d.includes("partial")).length, 1, "output sent once");
    assert.ok(data.some((d) => d.includes('"error"') && d.includes("incomplete")), text);
    assert.ok(!data.includes("[DONE]"), "a failed stream does not end like a complete one");
    // With continuations allowed the answer would be resumed on another worker (tests/dispatch/failover.test.ts).
  }, { AUXOT_LEASE_TIMEOUT: "1s", AUXOT_MAX_CONTINUATIONS: "0" });

  test("worker protocol: malformed posts, foreign jobs and version mismatch get clear errors", async (t) => {
    const post = (path: string, body: unknown, key = t.keys.admin) =>
      fetch(`${t.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const old = await post("/worker/v1/poll", { protocol: PROTOCOL_VERSION + 1, worker: {} });
    assert.equal(old.status, 426);
    assert.deepEqual(Object.keys(await old.json()).sort(), ["error", "fatal"]);
    const malformed = await post("/worker/v1/poll", { protocol: PROTOCOL_VERSION, worker: { id: "x" } });
    assert.equal(malformed.status, 400);
    assert.equal((await malformed.json()).fatal, false);
    const events = await post("/worker/v1/jobs/nope/events", {
      workerId: "w-1234567",
      seq: 0,
      events: [{ type: "bogus" }],
    });
    assert.equal(events.status, 400);
    await events.body?.cancel();
    const unknown = await postEvents(t, { id: "no-such-job" }, "w-12345678", 0, [{ type: "text", text: "x" }]);
    assert.equal(unknown.status, 409);
    // A worker loop given a wrong key exits with a fatal error instead of retrying forever.
    const wrong = startWorker(t, new ScriptedEngine(), { key: t.keys.admin.slice(0, -4) + "AAAA" });
    await assert.rejects(wrong.done, FatalWorkerError);
    const toolsAsGpu = startWorker(t, new ScriptedEngine(), { key: t.keys.tools });
    await assert.rejects(toolsAsGpu.done, FatalWorkerError);
  });

  test("the router's logs never contain a key", async (t, client) => {
    await withWorker(t, new ScriptedEngine(), async () => {
      await client.chat.completions.create({ model: "m", messages: user("echo secret-free") });
      await fetch(`${t.url}/v1/models`, { headers: { authorization: `Bearer ${t.keys.api.slice(0, -3)}xyz` } }).then((
        r,
      ) => r.body?.cancel());
    });
    const all = t.logs.join("\n");
    for (const key of [t.keys.api, t.keys.admin, t.keys.tools]) {
      assert.ok(!all.includes(key.slice(4)), "a key appears in the logs");
    }
  });
}

async function pollRaw(t: RouterTarget, id: string, free: number, policyVersion?: string) {
  const response = await fetch(`${t.url}/worker/v1/poll`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.keys.admin}`, "content-type": "application/json" },
    body: JSON.stringify({
      protocol: PROTOCOL_VERSION,
      worker: { id, kind: "gpu", slots: 1, free, ...(policyVersion ? { loaded: { policyVersion, model: "m" } } : {}) },
      activeJobs: [],
      waitMs: 0,
    }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  return { version: body.policy.version as string, jobs: body.jobs as { id: string; leaseToken: string }[] };
}

function postEvents(
  t: RouterTarget,
  job: { id: string; leaseToken?: string },
  workerId: string,
  seq: number,
  events: unknown[],
) {
  return fetch(`${t.url}/worker/v1/jobs/${job.id}/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.keys.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ workerId, leaseToken: job.leaseToken ?? "none", seq, events }),
  }).then(async (r) => {
    await r.body?.cancel();
    return r;
  });
}
