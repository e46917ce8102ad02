/**
 * Worker polls on the Upstash store: the claim script (heartbeat, leases, cancellations, jobs handed out) and the
 * parked wait between claims (BLPOP on the lanes' wake lists, which Redis ends when a job is enqueued or re-queued;
 * in-process wake-ups end only the polling fallback's waits sooner).
 *
 * Hand-offs: a worker whose claim (or finished job) leaves it a free slot and nothing to claim is parked on its lanes,
 * and the next enqueue there hands it the job directly (lua/enqueue.ts): leased to it and pushed on its hand-off
 * list, which the parked poll's BLPOP watches first. That job reaches the worker with no claim, so a worker busy
 * with one request after another costs one BLPOP per request (and its posts). A claim takes whatever is on the
 * list too (a poll that was not parked when the job came).
 *
 * Cost: a poll claims first only when its last claim through this instance may have left something behind.
 * When that claim left the lanes empty and held no job back for another worker, and anything enqueued
 * or re-queued since left a wake token: the poll waits first (one BLPOP, which takes such a token at once) and
 * claims after the wait — when woken, when it runs jobs (their leases and cancellations), or when its heartbeat is
 * due (half the worker TTL). So a worker whose requests are queued (not handed off) costs one claim and one BLPOP
 * per request, and an idle one, with 50 s polls and the Upstash store's 150 s worker TTL, 2 BLPOPs and 1 claim per
 * 100 s (1.8 commands a minute). Leases of running jobs are kept by the worker's own posts (a heartbeat post every
 * third of the lease) while it waits. Where polls land on instances that do not know the worker (other isolates),
 * each poll simply claims first.
 */
import type { WorkerJob } from "../../protocol/worker-protocol.ts";
import { LANE_TOPIC_PREFIX } from "../shared.ts";
import type { ClaimRequest, ClaimResult } from "../store.ts";
import { claimScript } from "./lua/claim.ts";
import {
  BLOCK_HTTP_MARGIN_MS,
  MIN_WAIT_MS,
  PARK_MS,
  POLL_MAX_MS,
  POLL_MIN_MS,
  REMAINDER_MIN_MS,
  type UpstashParts,
  WAKE_CAP,
  WAKE_TTL_MS,
} from "./parts.ts";
import { asArray, asNumber, asString } from "./replies.ts";
import type { RedisValue } from "./rest.ts";

/** Workers remembered per instance at most. */
const DRAINED_WORKERS = 10_000;

interface Drained {
  /** When the claim ran (the store's clock): the worker's heartbeat, and its leases' renewal. */
  at: number;
  /** The jobs it held after that claim. */
  leased: Set<string>;
  /**
   * Whether that claim's poll waited, so that the claim (or, once its jobs end, their final posts) parked the worker
   * for hand-offs (lua/claim.ts, lua/append-events.ts). A poll that waits first runs no script and relies on that
   * parking; after a claim whose poll did not wait (as right after a policy load), the next poll claims first.
   */
  parks: boolean;
}

interface ClaimOnce {
  jobs: WorkerJob[];
  cancelled: string[];
  heldUntil: number;
  /** Jobs left queued in the lanes served after the claim. */
  remaining: number;
  /** The store clock's time of the claim (the worker's heartbeat). */
  claimedAt: number;
}

export class Claims {
  readonly #parts: UpstashParts;
  /** Per worker (and lanes): its last claim through this instance, when it left nothing claimable behind. */
  readonly #drained = new Map<string, Drained>();

  constructor(parts: UpstashParts) {
    this.#parts = parts;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const opts = this.#parts.opts;
    const deadline = performance.now() + req.waitMs;
    const signal = this.#parts.signal(req.signal);
    const key = `${req.worker.id}|${req.lanes.join(",")}`;
    const last = this.#drained.get(key);
    const poll = { backoffMs: POLL_MIN_MS };

    // Nothing to claim since this worker's last claim here: wait first (anything enqueued since left a wake token)
    // and claim after the wait — when woken, when its running jobs need their leases and cancellations, or when
    // its heartbeat is due. See the module comment.
    if (last && this.#mayWaitFirst(req, last)) {
      const woken = await this.#waitForLanes(req, req.waitMs, signal, poll);
      if (typeof woken === "object") {
        // Handed off: leased to it already, and nothing else was queued for it (lua/enqueue.ts).
        last.leased.add(woken.id);
        return { jobs: [woken], cancelled: [] };
      }
      if (signal.aborted) return { jobs: [], cancelled: [] };
      const heartbeatDue = opts.now() - last.at >= opts.workerTtlMs / 2;
      if (!woken && req.activeJobs.length === 0 && !heartbeatDue) return { jobs: [], cancelled: [] };
    }

    let result = await this.#claimOnce(req, req.activeJobs);
    const cancelled = result.cancelled;
    while (result.jobs.length === 0 && req.max > 0) {
      const left = deadline - performance.now();
      if (left < MIN_WAIT_MS || signal.aborted) break;
      // A job held back for another worker's cached conversation becomes free for anyone at `heldUntil`.
      const recheck = result.heldUntil > 0;
      const waitMs = recheck ? Math.min(left, Math.max(result.heldUntil - opts.now(), MIN_WAIT_MS)) : left;
      const woken = await this.#waitForLanes(req, waitMs, signal, poll);
      if (typeof woken === "object") {
        result = { ...result, jobs: [woken], heldUntil: 0, remaining: 0 };
        break;
      }
      if (signal.aborted || (!woken && !recheck)) break;
      result = await this.#claimOnce(req, []);
    }
    this.#drained.delete(key);
    // Nothing left in the lanes and none held back: nothing more to give at that moment.
    if (result.remaining === 0 && result.heldUntil === 0) {
      const leased = new Set([
        ...req.activeJobs.filter((id) => !cancelled.includes(id)),
        ...result.jobs.map((j) => j.id),
      ]);
      this.#drained.set(key, { at: result.claimedAt, leased, parks: req.waitMs >= MIN_WAIT_MS });
      if (this.#drained.size > DRAINED_WORKERS) this.#drained.delete(this.#drained.keys().next().value!);
    }
    return { jobs: result.jobs, cancelled };
  }

  /** Whether a poll may wait before claiming: see the module comment. */
  #mayWaitFirst(req: ClaimRequest, last: Drained): boolean {
    const opts = this.#parts.opts;
    if (req.max <= 0 || req.waitMs < MIN_WAIT_MS || this.#parts.polling || !last.parks) return false;
    const since = opts.now() - last.at;
    if (req.activeJobs.length === 0) {
      // The heartbeat claim after the wait must still land within the worker's TTL.
      return since + req.waitMs + opts.workerTtlMs / 15 < opts.workerTtlMs;
    }
    // Running jobs: only those leased (or renewed) by that claim, moments ago. Their leases are kept by the
    // worker's own posts meanwhile (a heartbeat post every third of the lease), and the claim after the wait.
    return since < opts.leaseMs / 3 && req.activeJobs.every((id) => last.leased.has(id));
  }

  async #claimOnce(req: ClaimRequest, activeJobs: string[]): Promise<ClaimOnce> {
    const { keys: k, prefixes: p, opts } = this.#parts;
    const now = opts.now();
    const conversations = req.worker.cachedConversations ?? [];
    const reply = asArray(
      await this.#parts.scripts.run(claimScript, {
        worker: k.worker(req.worker.id),
        workers: k.workers,
        workerConversations: k.workerConversations(req.worker.id),
        conversationHolders: k.conversationHolders,
        running: k.running,
        queueDeadlines: k.queueDeadlines,
        lanes: k.lanes,
        claimReply: k.claimReply(req.worker.id),
        handoff: k.handoff(req.worker.id),
      }, {
        workerId: req.worker.id,
        info: JSON.stringify(req.worker),
        free: req.worker.free,
        now,
        leaseMs: opts.leaseMs,
        workerTtlMs: opts.workerTtlMs,
        affinityWaitMs: opts.affinityWaitMs,
        max: Math.max(0, req.max),
        jobPrefix: p.jobPrefix,
        lanePrefix: p.lanePrefix,
        affinityPrefix: p.affinityPrefix,
        wakePrefix: p.wakePrefix,
        workerPrefix: p.workerPrefix,
        workerConversationsPrefix: p.workerConversationsPrefix,
        activeCount: activeJobs.length,
        laneCount: req.lanes.length,
        conversationCount: conversations.length,
        // Makes the step repeatable: a retry whose first run's reply was lost gets that run's jobs.
        claimId: crypto.randomUUID(),
        wakeCap: WAKE_CAP,
        wakeTtlMs: WAKE_TTL_MS,
        // Its jobs may be taken back by their callers when it never posts (docs/store.md, "Lost wake-ups").
        postsProgress: req.worker.postsProgress === true ? 1 : 0,
        parkedPrefix: p.parkedPrefix,
        parkMs: PARK_MS,
        handoffPrefix: p.handoffPrefix,
        // A poll that will wait for jobs: only such a worker is handed jobs without a claim.
        parks: req.waitMs >= MIN_WAIT_MS ? 1 : 0,
      }, [...activeJobs, ...req.lanes, ...conversations]),
      "claim",
    );
    const cancelled = asArray(reply[0], "claim").map((id) => asString(id, "claim"));
    const jobs = asArray(reply[1], "claim").map((row) => workerJob(asArray(row, "claim"), now));
    return {
      jobs,
      cancelled,
      heldUntil: asNumber(reply[2], "claim"),
      remaining: asNumber(reply[3], "claim"),
      claimedAt: now,
    };
  }

  /**
   * Waits up to `ms` for a job: one handed to this worker (its hand-off list, watched first), or one queued in its
   * lanes (true: something may be claimable now).
   */
  async #waitForLanes(
    req: ClaimRequest,
    ms: number,
    signal: AbortSignal,
    poll: { backoffMs: number },
  ): Promise<boolean | WorkerJob> {
    const parts = this.#parts;
    const topics = req.lanes.map((lane) => LANE_TOPIC_PREFIX + lane);
    const handoffKey = parts.keys.handoff(req.worker.id);
    const wakeKeys = req.lanes.map((lane) => parts.keys.wake(lane));
    const until = performance.now() + ms;
    for (let round = 0;; round++) {
      const left = until - performance.now();
      if (left < (round === 0 ? MIN_WAIT_MS : REMAINDER_MIN_MS) || signal.aborted) return false;
      if (parts.polling || wakeKeys.length === 0) {
        const woken = await parts.wakeup.wait(topics, Math.min(left, poll.backoffMs), signal);
        poll.backoffMs = Math.min(poll.backoffMs * 2, POLL_MAX_MS);
        return woken || !signal.aborted;
      }
      const blockMs = Math.min(left, parts.maxBlockMs);
      const outcome = await parts.block(signal, async (abort) => {
        const popped = await parts.rest.command(["BLPOP", handoffKey, ...wakeKeys, (blockMs / 1000).toFixed(3)], {
          signal: abort,
          timeoutMs: blockMs + BLOCK_HTTP_MARGIN_MS,
        });
        if (popped === null) return null;
        const [key, element] = asArray(popped, "blpop");
        return key === handoffKey
          ? workerJob(asArray(JSON.parse(asString(element, "blpop")), "blpop"), parts.opts.now())
          : true;
      });
      if (outcome.kind === "remote" && typeof outcome.value === "object") return outcome.value;
      if (outcome.kind !== "timeout") return !signal.aborted;
    }
  }
}

/** A job as a claim (or a hand-off) gives it: `[id, payload JSON, attempt, deadlineAt]`. */
function workerJob(row: RedisValue[], now: number): WorkerJob {
  const [, payload, attempt, deadlineAt] = row;
  return {
    ...JSON.parse(asString(payload, "claim")),
    attempt: asNumber(attempt, "claim"),
    deadlineMs: Math.max(0, asNumber(deadlineAt, "claim") - now),
  } as WorkerJob;
}
