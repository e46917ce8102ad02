/**
 * Test helpers for the tools worker: a real tools worker process (workers/tools/main.ts under Deno) with its log
 * kept, small fixture HTTP servers on 127.0.0.1, a recording proxy in front of the router (to see what the
 * router hands a worker), and a GPU-side test engine whose "model" calls tools and then answers from their
 * results.
 */
import type { ChatJob, WorkerJob } from "../../src/protocol/worker-protocol.ts";
import type { EventSink } from "../../workers/common/engine.ts";
import { eventually } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";

export interface ToolsWorkerProcess {
  /** Everything the worker wrote (its JSON log lines go to stderr). */
  output(): string;
  pid: number;
  /** SIGTERM and wait; SIGKILL when it does not exit within a few seconds. */
  stop(): Promise<void>;
  kill(): Promise<void>;
  status: Promise<Deno.CommandStatus>;
}

/** Starts `deno run workers/tools/main.ts` with these flags; TMPDIR is a private folder removed on stop. */
export async function startToolsWorker(
  flags: string[],
  env: Record<string, string> = {},
): Promise<ToolsWorkerProcess> {
  const tmp = await Deno.makeTempDir({ prefix: "auxot-tools-test-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "workers/tools/main.ts", ...flags],
    env: { NO_COLOR: "1", TMPDIR: tmp, AUXOT_LOG_LEVEL: "debug", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const drain = (stream: ReadableStream<Uint8Array>) =>
    (async () => {
      for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
    })();
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let ended = false;
  const status = child.status.then(async (s) => {
    ended = true;
    await drained;
    return s;
  });
  const cleanup = async () => {
    await status;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  };
  return {
    output: () => text,
    pid: child.pid,
    status,
    stop: async () => {
      if (!ended) {
        try {
          child.kill("SIGTERM");
        } catch { /* exited */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
        }, 5_000);
        await status;
        clearTimeout(timer);
      }
      await cleanup();
    },
    kill: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await cleanup();
    },
  };
}

/** Waits until the router lists these tools (a tools worker connected and advertised them). */
export async function waitForTools(routerUrl: string, apiKey: string, names: string[]): Promise<string[]> {
  return await eventually(
    async () => {
      const response = await fetch(`${routerUrl}/v1/tools`, { headers: { authorization: `Bearer ${apiKey}` } });
      const body = await response.json() as { data: { name: string }[] };
      const listed = body.data.map((t) => t.name);
      return names.every((n) => listed.includes(n)) ? listed : undefined;
    },
    30_000,
    `tools ${names.join(", ")}`,
  );
}

/** Calls POST /v1/tools/execute; returns the status and body. */
export async function executeTool(
  routerUrl: string,
  apiKey: string,
  name: string,
  args: Record<string, unknown>,
): Promise<
  { status: number; body: { name?: string; content?: string; is_error?: boolean; error?: { message: string } } }
> {
  const response = await fetch(`${routerUrl}/v1/tools/execute`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name, arguments: args }),
  });
  return { status: response.status, body: await response.json() };
}

export interface FixtureServer {
  url: string;
  port: number;
  requests: Request[];
  close(): Promise<void>;
}

/** A small HTTP server on 127.0.0.1 (port 0) recording every request it serves. */
export function fixtureServer(handler: (request: Request) => Response | Promise<Response>): FixtureServer {
  const requests: Request[] = [];
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
    (request) => {
      requests.push(request.clone());
      return handler(request);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    requests,
    close: async () => {
      controller.abort();
      await server.finished;
    },
  };
}

export interface RecordingProxy extends FixtureServer {
  /** Every response body the router sent for a worker poll. */
  polls: unknown[];
}

/** Forwards every request to `target` and keeps the poll responses (what the router handed the worker). */
export function recordingProxy(target: string): RecordingProxy {
  const polls: unknown[] = [];
  // Held long-polls are ended when the proxy closes (not by each request's own signal).
  const upstreams = new AbortController();
  const server = fixtureServer(async (request) => {
    const url = new URL(request.url);
    try {
      const upstream = await fetch(target + url.pathname + url.search, {
        method: request.method,
        headers: request.headers,
        body: request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer(),
        signal: upstreams.signal,
      });
      const body = await upstream.arrayBuffer();
      if (url.pathname === "/worker/v1/poll" && upstream.ok) polls.push(JSON.parse(new TextDecoder().decode(body)));
      return new Response(body, { status: upstream.status, headers: upstream.headers });
    } catch {
      return new Response("proxy: upstream failed", { status: 502 });
    }
  });
  return {
    ...server,
    polls,
    close: async () => {
      upstreams.abort();
      await server.close();
    },
  };
}

/**
 * The GPU side of loop tests: a scripted "model" that also follows the request's tool choice and reads tool
 * results. When the conversation ends with tool results it answers `result: <text>` (`tool error: <text>` for
 * error results); when a tool is forced by name it calls that tool with the user message as JSON arguments;
 * `always <tool> <json>` calls that tool in every round where it is offered, and says so when it is not;
 * otherwise it follows the ScriptedEngine instructions (`tool <name> <json>`, `echo ...`).
 */
export class ToolUsingEngine extends ScriptedEngine {
  override async run(job: WorkerJob, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (job.kind !== "chat") return await super.run(job, sink, signal);
    const request = job.request;
    const last = request.messages.at(-1);
    const promptTokens = 10 * request.messages.length;
    const first = request.messages.find((m) => m.role === "user")?.content.map((p) => p.type === "text" ? p.text : "")
      .join("") ?? "";
    const always = /^always (\S+) (.*)$/.exec(first);
    if (always) {
      this.received.push(job);
      sink.emit({ type: "start", model: "tool-using", promptTokens });
      if (request.tools.some((t) => t.name === always[1])) {
        sink.emit({ type: "tool_call", index: 0, id: `call_${job.id.slice(0, 6)}`, name: always[1] });
        sink.emit({ type: "tool_args", index: 0, delta: always[2] });
        sink.emit({ type: "done", finishReason: "tool_calls" });
      } else {
        sink.emit({ type: "text", text: `no more ${always[1]}` });
        sink.emit({ type: "done", finishReason: "stop" });
      }
      return;
    }
    if (last?.role === "tool") {
      this.received.push(job);
      const results = request.messages.slice(request.messages.findLastIndex((m) => m.role === "assistant") + 1);
      const text = results.map((m) => {
        const content = m.content.map((p) => p.type === "text" ? p.text : "").join("");
        return m.role === "tool" && m.isError ? `tool error: ${content}` : `result: ${content}`;
      }).join("\n");
      sink.emit({ type: "start", model: "tool-using", promptTokens });
      sink.emit({ type: "text", text });
      sink.emit({ type: "usage", usage: { promptTokens, completionTokens: 7, cachedTokens: 0 } });
      sink.emit({ type: "done", finishReason: "stop" });
      return;
    }
    const choice = request.toolChoice;
    if (typeof choice === "object") {
      this.received.push(job);
      const user = last?.content.map((p) => p.type === "text" ? p.text : "").join("") ?? "{}";
      sink.emit({ type: "start", model: "tool-using", promptTokens });
      sink.emit({ type: "text", text: "Let me check." });
      sink.emit({ type: "tool_call", index: 0, id: `call_${job.id.slice(0, 6)}`, name: choice.name });
      sink.emit({ type: "tool_args", index: 0, delta: user });
      sink.emit({ type: "usage", usage: { promptTokens, completionTokens: 5, cachedTokens: 0 } });
      sink.emit({ type: "done", finishReason: "tool_calls" });
      return;
    }
    return await super.run(job, sink, signal);
  }

  /** The chat jobs this engine received, in order. */
  get jobs(): ChatJob[] {
    return this.received;
  }
}
