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
import type { KeyRole } from "../auth/keys.ts";
import type { RouterContext } from "./context.ts";
import { json } from "../http/responses.ts";
import { admitJobBytes, admitWorkerId, forgetJobBytes, toolSchemaBytes, WORKER_BOUNDS } from "./worker-bounds.ts";
import { isTerminal } from "../protocol/events.ts";
import { parseEventsPostFast } from "./events-post.ts";
import { workerModelLanes } from "../policy/route.ts";

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
  role: KeyRole,
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
  if (toolSchemaBytes(worker) > WORKER_BOUNDS.maxToolSchemaBytes) {
    throw new WorkerProtocolError(
      413,
      "tool_schemas_too_large",
      `worker.tools: ${
        toolSchemaBytes(worker)
      } bytes of tool definitions; at most ${WORKER_BOUNDS.maxToolSchemaBytes}.`,
      true,
    );
  }
  if (Object.keys(poll.leases ?? {}).length > 1024) {
    throw new WorkerProtocolError(400, "invalid_request", "leases: at most 1024 entries.", false);
  }
  if (!admitWorkerId(ctx, role, worker.id)) {
    throw new WorkerProtocolError(
      429,
      "too_many_workers",
      `This key already has ${
        WORKER_BOUNDS.maxWorkerIdsPerKey[role]
      } workers polling; a new worker id is admitted when one has been silent for a minute.`,
      false,
    );
  }
  // Only jobs whose lease token this worker holds are extended and told of cancels; the others are not its jobs
  // (a worker naming another's job, or a token from another worker id): it is told to drop them, nothing else.
  const leased: string[] = [];
  const notLeased: string[] = [];
  for (const id of poll.activeJobs) {
    const token = poll.leases?.[id];
    const check = ctx.auth.leases.checkIssued(token, id, worker.id, role) ??
      await ctx.auth.leases.check(token, id, worker.id, role);
    (check === "ok" ? leased : notLeased).push(id);
  }
  const { lanes, max } = workerLanes(ctx, worker);
  // A worker that has not loaded the current policy gets it at once and no jobs; it polls again once loaded.
  const ready = worker.kind === "tools" || worker.loaded?.policyVersion === policy.version;
  // AUXOT_POLL_WAIT (25 s by default) stays below common proxy idle timeouts; longer polls cost fewer commands.
  const cap = ctx.config.pollWaitMs;
  const waitMs = ready ? Math.min(poll.waitMs ?? cap, cap) : 0;
  const result = await ctx.store.claim({
    worker,
    lanes: ready ? lanes : [],
    activeJobs: leased,
    max: ready ? max : 0,
    waitMs,
    signal,
  });
  const response: Omit<PollResponse, "protocol" | "policy"> = {
    jobs: await Promise.all(result.jobs.map(async (job) => ({
      ...job,
      ...(job.kind === "tool" ? { credentials: ctx.config.toolCredentials[job.tool] ?? {} } : {}),
      leaseToken: await ctx.auth.leases.issue(job.id, worker.id, job.attempt, role),
    }))),
    cancelled: [...result.cancelled, ...notLeased],
    leaseMs: ctx.config.leaseMs,
    flushMs: ctx.store.kind === "embedded" ? 20 : 250,
    ...(ctx.store.kind === "embedded" ? {} : { maxFlushMs: 1_000 }),
  };
  if (response.jobs.length > 0 && ctx.log.level === "debug") {
    ctx.log.debug("jobs handed out", {
      worker: worker.id,
      jobs: response.jobs.map((j) => j.id),
    });
  }
  // The policy is the same object in every answer until the configuration changes: serialised once, not per poll
  // (with a registry model's file lists it is most of the body). Same bytes, same key order as one JSON.stringify.
  const rest = JSON.stringify(response);
  return new Response(`{"protocol":${PROTOCOL_VERSION},"policy":${policyJson(policy)},${rest.slice(1)}`, {
    headers: { "content-type": "application/json" },
  });
}

const policyJsons = new WeakMap<object, string>();
function policyJson(policy: object): string {
  let text = policyJsons.get(policy);
  if (text === undefined) policyJsons.set(policy, text = JSON.stringify(policy));
  return text;
}

export async function handleEvents(ctx: RouterContext, jobId: string, body: unknown, role: KeyRole): Promise<Response> {
  const post = parseEventsPostFast(body) ?? parse(EventsRequest, body);
  const lease = ctx.auth.leases.checkIssued(post.leaseToken, jobId, post.workerId, role) ??
    await ctx.auth.leases.check(post.leaseToken, jobId, post.workerId, role);
  if (lease === "wrong_role") {
    throw new WorkerProtocolError(
      403,
      "wrong_role",
      role === "tools"
        ? "This job was handed to a worker (adm_) key; a tools key cannot post its events."
        : "This job was handed to a tools (tls_) key; a worker key cannot post its events.",
      false,
    );
  }
  if (lease !== "ok") {
    return json(
      {
        error: {
          code: "invalid_lease",
          message: "this lease token was not issued to this worker for this job: stop working on it",
        },
        fatal: false,
      },
      {},
      409,
    );
  }
  if (post.seq + post.events.length > WORKER_BOUNDS.maxEventsPerJob) {
    return await tooLarge(ctx, jobId, post.workerId, post.seq, `more than ${WORKER_BOUNDS.maxEventsPerJob} events`);
  }
  if (!admitJobBytes(ctx, jobId, JSON.stringify(post.events).length)) {
    return await tooLarge(ctx, jobId, post.workerId, post.seq, `more than ${WORKER_BOUNDS.maxBytesPerJob} bytes`);
  }
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
  if (result.cancelled || post.events.some(isTerminal)) {
    // The job has ended for this worker: per-job tables let go of it now rather than when they overflow.
    ctx.auth.leases.forget(jobId);
    forgetJobBytes(ctx, jobId);
  }
  return json({ cancelled: result.cancelled, next: result.next });
}

/**
 * A job past its bounds ends with an explicit error to its caller (appended in the worker's place: its lease is
 * proven), and the worker is told with a 413 to stop.
 */
async function tooLarge(ctx: RouterContext, jobId: string, workerId: string, seq: number, what: string) {
  const message = `the worker's output for this job passed the router's bound (${what})`;
  await ctx.store.appendEvents(jobId, workerId, seq, [
    { type: "error", message, retryable: false, code: "job_too_large" },
  ]);
  return json({ error: { code: "job_too_large", message: `${message}: stop working on it` }, fatal: false }, {}, 413);
}

let pollTurn = 0;

/**
 * The lanes a worker serves and how many jobs one claim may take: per model for GPU/CLI workers
 * (src/policy/route.ts); one lane per allowed tool for tools workers.
 */
function workerLanes(ctx: RouterContext, worker: WorkerInfo): { lanes: string[]; max: number } {
  if (worker.kind !== "tools") return workerModelLanes(ctx.config.policy, worker, pollTurn++);
  const allowed = ctx.config.allowedTools;
  const lanes = (worker.tools ?? [])
    .map((t) => t.name)
    .filter((name) => allowed.length === 0 || allowed.includes(name))
    .map((name) => `tool:${name}`);
  return { lanes, max: worker.free };
}

export function workerErrorResponse(err: unknown): Response {
  if (err instanceof WorkerProtocolError) return json(err.body(), {}, err.status);
  if (err instanceof ApiError) {
    return json({ error: { code: err.kind, message: err.message }, fatal: err.status === 401 }, {}, err.status);
  }
  return json({ error: { code: "internal", message: "Internal server error" }, fatal: false }, {}, 500);
}
