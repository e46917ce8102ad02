/**
 * Worker polls on the Upstash store: the claim script (heartbeat, leases, cancellations, jobs handed out) and the
 * parked wait between claims (BLPOP on the lanes' wake lists, raced against in-process wake-ups).
 *
 * What an idle worker costs: a poll whose worker ran nothing and found nothing on its last claim through this
 * instance does not claim again before waiting — any job enqueued since left a wake token, which its BLPOP takes at
 * once. After an un-woken wait it claims only when its heartbeat is due (half the worker TTL): with 50 s polls and
 * the Upstash store's 150 s worker TTL, an idle worker costs 2 BLPOPs and 1 claim per 100 s (1.8 commands a minute).
 * Where polls land on instances that do not know the worker (other isolates), each poll simply claims first.
 */
import type { WorkerJob } from "../../protocol/worker-protocol.ts";
import { LANE_TOPIC_PREFIX } from "../shared.ts";
import type { ClaimRequest, ClaimResult } from "../store.ts";
import { claimScript } from "./lua/claim.ts";
import {
  BLOCK_HTTP_MARGIN_MS,
  MIN_WAIT_MS,
  POLL_MAX_MS,
  POLL_MIN_MS,
  REMAINDER_MIN_MS,
  type UpstashParts,
  WAKE_CAP,
  WAKE_TTL_MS,
} from "./parts.ts";
import { asArray, asNumber, asString } from "./replies.ts";

/** A claim must land this long before the worker's TTL runs out, even if the one after a wait fails. */
const HEARTBEAT_MARGIN_MS = 10_000;
/** Idle workers remembered per instance at most. */
const IDLE_WORKERS = 10_000;

interface ClaimOnce {
  jobs: WorkerJob[];
  cancelled: string[];
  heldUntil: number;
  /** The store clock's time of the claim (the worker's heartbeat). */
  claimedAt: number;
}

export class Claims {
  readonly #parts: UpstashParts;
  /** Workers whose last claim here found nothing and ran nothing: `${id}|${lanes}` → when that claim ran. */
  readonly #idle = new Map<string, number>();

  constructor(parts: UpstashParts) {
    this.#parts = parts;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const opts = this.#parts.opts;
    const deadline = performance.now() + req.waitMs;
    const signal = this.#parts.signal(req.signal);
    const idleKey = `${req.worker.id}|${req.lanes.join(",")}`;
    const lastHeartbeat = this.#idle.get(idleKey);
    const idle = req.activeJobs.length === 0 && req.max > 0 && req.waitMs >= MIN_WAIT_MS &&
      lastHeartbeat !== undefined;
    const sinceHeartbeat = () => opts.now() - (lastHeartbeat ?? 0);
    const poll = { backoffMs: POLL_MIN_MS };

    // An idle worker that found nothing last time waits first: anything enqueued since left a wake token.
    if (idle && sinceHeartbeat() + req.waitMs + HEARTBEAT_MARGIN_MS < opts.workerTtlMs && !this.#parts.polling) {
      const woken = await this.#waitForLanes(req.lanes, req.waitMs, signal, poll);
      if (signal.aborted) return { jobs: [], cancelled: [] };
      if (!woken && sinceHeartbeat() < opts.workerTtlMs / 2) return { jobs: [], cancelled: [] };
    }

    let result = await this.#claimOnce(req, req.activeJobs);
    const cancelled = result.cancelled;
    while (result.jobs.length === 0 && req.max > 0) {
      const left = deadline - performance.now();
      if (left < MIN_WAIT_MS || signal.aborted) break;
      // A job held back for another worker's cached conversation becomes free for anyone at `heldUntil`.
      const recheck = result.heldUntil > 0;
      const waitMs = recheck ? Math.min(left, Math.max(result.heldUntil - opts.now(), MIN_WAIT_MS)) : left;
      const woken = await this.#waitForLanes(req.lanes, waitMs, signal, poll);
      if (signal.aborted || (!woken && !recheck)) break;
      result = await this.#claimOnce(req, []);
    }
    this.#remember(idleKey, req, result);
    return { jobs: result.jobs, cancelled };
  }

  /** Notes whether this worker ended its poll idle-handed (see the module comment). */
  #remember(idleKey: string, req: ClaimRequest, result: ClaimOnce): void {
    this.#idle.delete(idleKey);
    if (result.jobs.length > 0 || result.heldUntil > 0 || req.activeJobs.length > 0 || req.max === 0) return;
    this.#idle.set(idleKey, result.claimedAt);
    if (this.#idle.size > IDLE_WORKERS) this.#idle.delete(this.#idle.keys().next().value!);
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
      }, [...activeJobs, ...req.lanes, ...conversations]),
      "claim",
    );
    const cancelled = asArray(reply[0], "claim").map((id) => asString(id, "claim"));
    const jobs = asArray(reply[1], "claim").map((row) => {
      const [, payload, attempt, deadlineAt] = asArray(row, "claim");
      return {
        ...JSON.parse(asString(payload, "claim")),
        attempt: asNumber(attempt, "claim"),
        deadlineMs: Math.max(0, asNumber(deadlineAt, "claim") - now),
      } as WorkerJob;
    });
    return { jobs, cancelled, heldUntil: asNumber(reply[2], "claim"), claimedAt: now };
  }

  /** Waits up to `ms` for a job in one of the lanes; true when something may be claimable now. */
  async #waitForLanes(lanes: string[], ms: number, signal: AbortSignal, poll: { backoffMs: number }): Promise<boolean> {
    const parts = this.#parts;
    const topics = lanes.map((lane) => LANE_TOPIC_PREFIX + lane);
    const wakeKeys = lanes.map((lane) => parts.keys.wake(lane));
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
      const outcome = await parts.race(topics, blockMs, signal, async (abort) => {
        const popped = await parts.rest.command(["BLPOP", ...wakeKeys, (blockMs / 1000).toFixed(3)], {
          signal: abort,
          timeoutMs: blockMs + BLOCK_HTTP_MARGIN_MS,
        });
        return popped === null ? null : true;
      });
      if (outcome.kind !== "timeout") return !signal.aborted;
    }
  }
}
