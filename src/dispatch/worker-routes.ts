/**
 * The router's side of the worker protocol (src/protocol/worker-protocol.ts, docs/worker-protocol.md):
 * long-polls that hand out jobs with the current policy, and event batches posted for leased jobs.
 */
import { ApiError } from "../http/errors.ts";
import {
  EventsRequest,
  PollRequest,
  type PollResponse,
  PROTOCOL_VERSION,
  type WorkerError,
  type WorkerInfo,
} from "../protocol/worker-protocol.ts";
import type { RouterContext } from "./context.ts";
import { json } from "../http/responses.ts";

export class WorkerProtocolError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly fatal: boolean) {
    super(message);
  }
  body(): WorkerError {
    return { error: { code: this.code, message: this.message }, fatal: this.fatal };
  }
}

function parse<T>(
  schema: {
    safeParse(
      v: unknown,
    ): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  body: unknown,
): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new WorkerProtocolError(400, "invalid_request", `${issue.path.join(".") || "body"}: ${issue.message}`, false);
}

export async function handlePoll(
  ctx: RouterContext,
  body: unknown,
  role: string,
  signal: AbortSignal,
): Promise<Response> {
  // Worker polls are the steadiest traffic there is: on Workers (no timers) they drive the sweep of lost leases.
  ctx.reapSoon();
  const protocol = (body as { protocol?: unknown } | null)?.protocol;
  if (protocol !== PROTOCOL_VERSION) {
    throw new WorkerProtocolError(
      426,
      "incompatible_protocol",
      `This router speaks worker protocol ${PROTOCOL_VERSION}; the worker sent ${
        JSON.stringify(protocol)
      }. Upgrade the worker or the router.`,
      true,
    );
  }
  const poll = parse(PollRequest, body);
  const worker = poll.worker;
  const policy = ctx.config.policy;
  if ((worker.kind === "tools") !== (role === "tools")) {
    throw new WorkerProtocolError(
      403,
      "wrong_key",
      `A ${worker.kind} worker must authenticate with ${
        worker.kind === "tools" ? "a tools (tls_)" : "a worker (adm_)"
      } key.`,
      true,
    );
  }
  const wantedEngine = policy.engine === "cli" ? "cli" : "gpu";
  if (worker.kind !== "tools" && worker.kind !== wantedEngine) {
    throw new WorkerProtocolError(
      409,
      "wrong_worker_kind",
      `This router's policy serves "${policy.engine}" jobs; a ${worker.kind} worker cannot serve them.`,
      true,
    );
  }
  const lanes = workerLanes(ctx, worker);
  // A worker that has not loaded the current policy gets it at once and no jobs; it polls again once loaded.
  const ready = worker.kind === "tools" || worker.loaded?.policyVersion === policy.version;
  // AUXOT_POLL_WAIT (25 s by default) stays below common proxy idle timeouts; longer polls cost fewer commands.
  const cap = ctx.config.pollWaitMs;
  const waitMs = ready ? Math.min(poll.waitMs ?? cap, cap) : 0;
  const result = await ctx.store.claim({
    worker,
    lanes: ready ? lanes : [],
    activeJobs: poll.activeJobs,
    max: ready ? worker.free : 0,
    waitMs,
    signal,
  });
  const response: PollResponse = {
    protocol: PROTOCOL_VERSION,
    policy,
    jobs: result.jobs.map((job) =>
      job.kind === "tool" ? { ...job, credentials: ctx.config.toolCredentials[job.tool] ?? {} } : job
    ),
    cancelled: result.cancelled,
    leaseMs: ctx.config.leaseMs,
    flushMs: ctx.store.kind === "embedded" ? 20 : 250,
    ...(ctx.store.kind === "embedded" ? {} : { maxFlushMs: 1_000 }),
  };
  if (response.jobs.length > 0) {
    ctx.log.debug("jobs handed out", {
      worker: worker.id,
      jobs: response.jobs.map((j) => j.id),
    });
  }
  return json(response);
}

export async function handleEvents(ctx: RouterContext, jobId: string, body: unknown): Promise<Response> {
  const post = parse(EventsRequest, body);
  const result = await ctx.store.appendEvents(jobId, post.workerId, post.seq, post.events);
  if (!result.ok) {
    const message = result.reason === "seq_gap"
      ? `events must continue at seq ${result.next}`
      : result.reason === "unknown_job"
      ? "no such job (it finished or expired): stop working on it"
      : "this job is not leased to this worker (lease lost or job re-queued): stop working on it";
    return json({ error: { code: result.reason, message }, fatal: false, next: result.next }, {}, 409);
  }
  ctx.metrics.workerPosted(post.events);
  return json({ cancelled: result.cancelled, next: result.next });
}

/** The lanes a worker serves: chat for GPU/CLI workers; one lane per allowed tool for tools workers. */
function workerLanes(ctx: RouterContext, worker: WorkerInfo): string[] {
  if (worker.kind !== "tools") return ["chat"];
  const allowed = ctx.config.allowedTools;
  return (worker.tools ?? [])
    .map((t) => t.name)
    .filter((name) => allowed.length === 0 || allowed.includes(name))
    .map((name) => `tool:${name}`);
}

export function workerErrorResponse(err: unknown): Response {
  if (err instanceof WorkerProtocolError) return json(err.body(), {}, err.status);
  if (err instanceof ApiError) {
    return json({ error: { code: err.kind, message: err.message }, fatal: err.status === 401 }, {}, err.status);
  }
  return json({ error: { code: "internal", message: "Internal server error" }, fatal: false }, {}, 500);
}
