/**
 * Runs one server tool call as a job: enqueued in lane `tool:<name>` (only tools workers offering that tool
 * claim from it), its `text` events gathered into the result. Credentials are not in the job: the router
 * attaches them when it hands the job to a worker (src/dispatch/worker-routes.ts), so they are never stored.
 *
 * Outcomes: the result; a tool-level failure the worker reported (`error` event, code "tool_error"); or an
 * infrastructure failure (no worker took it, deadline passed, worker lost). A tools worker that vanishes
 * mid-call loses its lease; the store would then queue the call again, which this runner notices (the job
 * went back from running to queued) and turns into a prompt failure rather than a run on some other worker
 * later: a tool may have side effects, and the caller should not wait for the job timeout.
 */
import type { RouterContext } from "../dispatch/context.ts";
import type { JobEvent } from "../protocol/events.ts";
import { type CancelReason, StoreError } from "../store/store.ts";

/** How often a running call's state is checked (a lost worker is noticed within a lease plus this). */
const POLL_MS = 1_000;

export interface ToolCallRequest {
  name: string;
  arguments: Record<string, unknown>;
}

export type ToolOutcome =
  | { ok: true; content: string }
  | {
    ok: false;
    /** "tool_error" (the tool failed), or what failed around it: queue_full, queue_timeout, timeout, worker_lost, ... */
    code: string;
    message: string;
  };

/**
 * Runs the call to the end. Aborting `signal` cancels the job (with `signal.reason` as the cancel reason when it
 * is one) and resolves with a "cancelled" outcome.
 */
export async function runServerTool(
  ctx: RouterContext,
  call: ToolCallRequest,
  signal: AbortSignal,
): Promise<ToolOutcome> {
  const id = `tool${crypto.randomUUID().replaceAll("-", "")}`;
  const now = ctx.now();
  const deadlineAt = now + ctx.config.jobTimeoutMs;
  try {
    await ctx.store.enqueue({
      id,
      lane: `tool:${call.name}`,
      payload: { id, kind: "tool", tool: call.name, arguments: call.arguments, credentials: {} },
      deadlineAt,
      queueDeadlineAt: now + ctx.config.queueTimeoutMs,
    });
  } catch (err) {
    if (err instanceof StoreError && err.code === "queue_full") {
      return { ok: false, code: "queue_full", message: `too many ${call.name} calls are waiting; try again shortly` };
    }
    throw err;
  }
  let cursor = "";
  let text = "";
  let sawRunning = false;
  for (;;) {
    if (signal.aborted) {
      await ctx.store.cancel(id, cancelReason(signal));
      return { ok: false, code: "cancelled", message: "the call was cancelled" };
    }
    ctx.reapSoon();
    // Read at least twice a lease, so the running state is seen before a lost lease can re-queue the call.
    const read = await ctx.store.readEvents(
      id,
      cursor,
      Math.min(POLL_MS, Math.max(50, ctx.config.leaseMs / 2)),
      signal,
    );
    cursor = read.cursor;
    for (const event of read.events) {
      if (event.type === "text") text += event.text;
      else if (event.type === "done") return { ok: true, content: text };
      else if (event.type === "error") return failure(call.name, event);
    }
    if (read.state !== "queued" && read.state !== "running") {
      return { ok: false, code: "worker_lost", message: `the ${call.name} call ended without a result` };
    }
    if (read.state === "running") sawRunning = true;
    else if (sawRunning) {
      await ctx.store.cancel(id, "timeout");
      ctx.log.warn("tools worker lost during a call", { job: id, tool: call.name });
      return {
        ok: false,
        code: "worker_lost",
        message: `the tools worker running ${call.name} stopped responding; the call was abandoned`,
      };
    }
    if (ctx.now() >= deadlineAt) {
      await ctx.store.cancel(id, "timeout");
      return { ok: false, code: "timeout", message: `${call.name} ran past AUXOT_JOB_TIMEOUT` };
    }
  }
}

function failure(tool: string, event: Extract<JobEvent, { type: "error" }>): ToolOutcome {
  const code = event.code ?? "tool_error";
  const messages: Record<string, string> = {
    queue_timeout: `no tools worker took the ${tool} call in time (is a tools worker offering it connected?)`,
    timeout: `${tool} ran past AUXOT_JOB_TIMEOUT`,
    worker_lost: `the tools worker running ${tool} stopped responding`,
    caller_left: "the call was cancelled",
  };
  return { ok: false, code, message: messages[code] ?? event.message };
}

function cancelReason(signal: AbortSignal): CancelReason {
  const reason = signal.reason;
  return reason === "timeout" || reason === "queue_timeout" || reason === "shutdown" ? reason : "caller_left";
}
