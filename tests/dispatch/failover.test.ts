/**
 * Failover inside one router (embedded store): a worker that speaks the protocol by hand posts part of an answer
 * and falls silent; a real worker loop with the scripted engine then resumes it. Checks what the caller sees (one
 * answer: no duplicated text, no second role chunk or message_start, usage summed), what the next worker receives
 * (the continuation), and the explicit failures (a tool call in progress; a worker that keeps posting is never
 * declared lost; a worker that never posted progress is left to the lease). Process-level kills with the real
 * llama.cpp engine are in tests/reliability/failover.test.ts.
 */
import assert from "node:assert/strict";
import { PROTOCOL_VERSION } from "../../src/protocol/worker-protocol.ts";
import { eventually, type RouterTarget, startDenoRouter, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

const FAST = { AUXOT_WORKER_SILENCE: "2s", AUXOT_LEASE_TIMEOUT: "30s" };

async function withRouter(env: Record<string, string>, fn: (t: RouterTarget) => Promise<void>): Promise<void> {
  const target = await startDenoRouter({ ...FAST, ...env });
  try {
    await fn(target);
  } finally {
    await target.close();
  }
}

/** A worker driven by hand: claims one job, then posts what the test says. */
async function handWorker(t: RouterTarget, id: string) {
  const poll = async (free: number, version?: string) => {
    const response = await fetch(`${t.url}/worker/v1/poll`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.keys.admin}`, "content-type": "application/json" },
      body: JSON.stringify({
        protocol: PROTOCOL_VERSION,
        worker: {
          id,
          kind: "gpu",
          slots: 1,
          free,
          ...(version ? { loaded: { policyVersion: version, model: "m" } } : {}),
        },
        activeJobs: [],
        waitMs: 0,
      }),
    });
    return await response.json() as { policy: { version: string }; jobs: { id: string; leaseToken: string }[] };
  };
  const version = (await poll(0)).policy.version;
  let seq = 0;
  // Each claimed job's lease token: the router accepts a job's events only with it.
  const leases = new Map<string, string>();
  return {
    claim: async () => {
      const job = await eventually(async () => (await poll(1, version)).jobs[0], 10_000, "a job for the hand worker");
      leases.set(job.id, job.leaseToken);
      return job;
    },
    post: async (jobId: string, events: unknown[]) => {
      const response = await fetch(`${t.url}/worker/v1/jobs/${jobId}/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${t.keys.admin}`, "content-type": "application/json" },
        body: JSON.stringify({ workerId: id, leaseToken: leases.get(jobId) ?? "", seq, events }),
      });
      seq += events.length;
      return await response.json() as { cancelled?: boolean };
    },
  };
}

function chat(t: RouterTarget, path: string, body: unknown): Promise<Response> {
  return fetch(`${t.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.keys.api}`, "content-type": "application/json", "anthropic-version": "x" },
    body: JSON.stringify(body),
  });
}

function dataLines(text: string): unknown[] {
  return text.split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]").map((l) =>
    JSON.parse(l.slice(6))
  );
}

Deno.test("a silent worker's answer is continued on another worker: one answer, usage summed", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "lost-worker-1");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "echo alpha beta gamma delta" }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [
      { type: "start", model: "m", promptTokens: 7 },
      { type: "progress", phase: "generate", completionTokens: 2 },
      { type: "text", text: "alpha " },
      { type: "text", text: "beta " },
    ]);
    // Silence from here on. A real worker comes up and must resume, not restart.
    const engine = new ScriptedEngine();
    const worker = startWorker(t, engine, { key: t.keys.admin });
    try {
      const body = await (await response).text();
      const chunks = dataLines(body) as {
        choices: { delta: { role?: string; content?: string } }[];
        usage?: { prompt_tokens: number; completion_tokens: number };
      }[];
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
      assert.equal(text, "alpha beta gamma delta");
      assert.equal(chunks.filter((c) => c.choices[0]?.delta.role).length, 1, "one role chunk");
      const usage = chunks.at(-1)?.usage;
      assert.equal(usage?.prompt_tokens, 7, "the caller's own prompt, once");
      assert.equal(usage?.completion_tokens, 2 + 2, "the lost worker's tokens plus the new worker's");
      assert.equal(engine.received.length, 1);
      const continuation = engine.received[0].continuation;
      assert.equal(continuation?.text, "alpha beta ");
      assert.equal(continuation?.count, 1);
      assert.ok(body.endsWith("data: [DONE]\n\n"));
      assert.ok(t.logs.some((l) => l.includes('"job continued"')), "the continuation is logged");
      // The lost worker, should it wake up, is told its job was cancelled.
      assert.equal((await hand.post(job.id, [{ type: "text", text: "zombie" }])).cancelled, true);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("Anthropic: a continued answer has one message_start and one text block", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "lost-worker-2");
    const response = chat(t, "/v1/messages", {
      model: "m",
      max_tokens: 100,
      stream: true,
      messages: [{ role: "user", content: "think pondering | the answer" }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [
      { type: "start", model: "m", promptTokens: 5 },
      { type: "progress", phase: "generate", completionTokens: 1 },
      { type: "reasoning", text: "ponder" },
    ]);
    const engine = new ScriptedEngine();
    const worker = startWorker(t, engine, { key: t.keys.admin });
    try {
      const events = dataLines(await (await response).text()) as {
        type: string;
        delta?: { thinking?: string; text?: string };
      }[];
      assert.equal(events.filter((e) => e.type === "message_start").length, 1);
      assert.equal(events.filter((e) => e.type === "message_stop").length, 1);
      const thinking = events.map((e) => e.delta?.thinking ?? "").join("");
      const text = events.map((e) => e.delta?.text ?? "").join("");
      assert.equal(thinking, "pondering");
      assert.equal(text, "the answer");
      assert.equal(engine.received[0].continuation?.reasoning, "ponder");
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("a worker lost while writing a tool call fails the answer explicitly, without waiting for the lease", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "lost-worker-3");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "tool lookup {}" }],
      tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [
      { type: "start", model: "m" },
      { type: "progress", phase: "generate" },
      { type: "tool_call", index: 0, id: "call_1", name: "lookup" },
      { type: "tool_args", index: 0, delta: '{"q":' },
    ]);
    const body = await (await response).text();
    assert.match(body, /tool call/);
    assert.match(body, /"error"/);
    assert.ok(!body.includes("[DONE]"), "a failed stream does not end like a complete one");
    assert.ok(!t.logs.some((l) => l.includes('"job continued"')));
  });
});

Deno.test("a worker that keeps posting progress is never declared lost, however long it takes", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "slow-worker-1");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: "anything" }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [{ type: "start", model: "m" }]);
    // A 5 s "prompt evaluation" (2.5× the silence window) with progress every 500 ms.
    for (let done = 0; done < 10; done++) {
      await hand.post(job.id, [{
        type: "progress",
        phase: "prefill",
        promptTokensDone: done * 100,
        promptTokens: 1000,
      }]);
      await new Promise((r) => setTimeout(r, 500));
    }
    await hand.post(job.id, [{ type: "text", text: "finally" }, { type: "done", finishReason: "stop" }]);
    const body = await (await response).json() as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0].message.content, "finally");
    assert.ok(!t.logs.some((l) => l.includes('"job continued"')));
  });
});

Deno.test("a worker that never posts progress (an older worker) is left to its lease, not to the silence rule", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "old-worker-1");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: "anything" }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [{ type: "start", model: "m" }, { type: "text", text: "slow " }]);
    await new Promise((r) => setTimeout(r, 3_000)); // past AUXOT_WORKER_SILENCE (2 s), within the lease
    await hand.post(job.id, [{ type: "text", text: "but alive" }, { type: "done", finishReason: "stop" }]);
    const body = await (await response).json() as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0].message.content, "slow but alive");
  });
});

Deno.test("continuations are bounded: the answer fails explicitly after AUXOT_MAX_CONTINUATIONS", async () => {
  await withRouter({ AUXOT_MAX_CONTINUATIONS: "1" }, async (t) => {
    const first = await handWorker(t, "lost-worker-4");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "echo a b c" }],
    });
    const job = await first.claim();
    await first.post(job.id, [{ type: "start", model: "m" }, { type: "progress", phase: "generate" }, {
      type: "text",
      text: "a ",
    }]);
    const second = await handWorker(t, "lost-worker-5");
    const next = await second.claim();
    assert.notEqual(next.id, job.id, "the continuation is a new job");
    await second.post(next.id, [{ type: "start", model: "m", continued: true }, {
      type: "progress",
      phase: "generate",
    }]);
    const body = await (await response).text();
    assert.match(body, /AUXOT_MAX_CONTINUATIONS/);
    assert.equal(body.split('"a "').length - 1, 1, "the text sent once");
  });
});

Deno.test("a worker lost before any output: the job is retried plainly at once, not after the lease", async () => {
  await withRouter({}, async (t) => {
    const hand = await handWorker(t, "lost-worker-6");
    const response = chat(t, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: "echo from the start" }],
    });
    const job = await hand.claim();
    await hand.post(job.id, [{ type: "start", model: "m", promptTokens: 3 }, { type: "progress", phase: "prefill" }]);
    const engine = new ScriptedEngine();
    const worker = startWorker(t, engine, { key: t.keys.admin });
    try {
      const body = await (await response).json() as { choices: { message: { content: string } }[] };
      assert.equal(body.choices[0].message.content, "from the start");
      assert.equal(engine.received[0].continuation, undefined, "nothing to resume: any worker may serve it");
    } finally {
      await worker.stop();
    }
  });
});
