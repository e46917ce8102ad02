/**
 * Lease tokens: a job handed to a worker comes with a token only that claim could have produced,
 *
 *   lt1.<attempt>.<role>.<HMAC(router secret, "jobId|workerId|attempt|role")>
 *
 * and the router accepts a job's events, lease extensions (heartbeats) and cancel notices only with it. Worker ids are
 * chosen by workers and every worker of a role holds the same key, so neither says which worker is which; the token
 * does. It needs no store: any isolate of the deployment derives the same secret (src/auth/router-secret.ts) and checks
 * it by recomputing the HMAC. Whether the lease is still current (not lost, not re-queued to another worker) remains
 * the store's answer; the token only makes the worker id in a request impossible to borrow.
 *
 * The role says which key may use it: chat jobs are claimed with worker (adm_) keys, tool jobs with tools (tls_)
 * keys, so a token carries the claiming role and a request with the other role's key is refused.
 */
import type { Argon2Phc, KeyRole } from "./keys.ts";
import { constantTimeEqual, deriveRouterKey, hmacBase64url, type RouterKey } from "./router-secret.ts";

const ROLE_CODE: Record<KeyRole, string> = { admin: "a", tools: "t", api: "r" };

export type LeaseCheck = "ok" | "wrong_role" | "invalid";

/**
 * Tokens this isolate issued lately, by job id (oldest dropped past this many): a job's token is checked on every
 * post and poll of its worker, and comparing it with the issued one spares an HMAC each time. A token not found here
 * (another isolate issued it, an older attempt, evicted) is checked by recomputing its MAC, as before.
 */
const ISSUED_MAX = 8_192;

export class LeaseTokens {
  readonly #key: RouterKey;
  readonly #issued = new Map<string, { workerId: string; token: string; role: string }>();

  constructor(hashes: Partial<Record<KeyRole, Argon2Phc>>) {
    this.#key = deriveRouterKey(hashes, "lease-token");
  }

  async issue(jobId: string, workerId: string, attempt: number, role: KeyRole): Promise<string> {
    const token = `lt1.${attempt}.${ROLE_CODE[role]}.${await this.#mac(jobId, workerId, attempt, ROLE_CODE[role])}`;
    this.#issued.delete(jobId);
    if (this.#issued.size >= ISSUED_MAX) this.#issued.delete(this.#issued.keys().next().value!);
    this.#issued.set(jobId, { workerId, token, role: ROLE_CODE[role] });
    return token;
  }

  /** The job has ended: its issued token need not be remembered (a late post is checked by its MAC). */
  forget(jobId: string): void {
    this.#issued.delete(jobId);
  }

  /**
   * The answer of `check` without waiting, when the token is the one issued here (same job, worker id, attempt, role
   * and MAC: nothing to parse or recompute); undefined when only `check` can tell. A poll checks every active job.
   */
  checkIssued(token: string | undefined, jobId: string, workerId: string, role: KeyRole): LeaseCheck | undefined {
    const issued = this.#issued.get(jobId);
    if (token === undefined || issued?.workerId !== workerId || !constantTimeEqual(issued.token, token)) return;
    return issued.role === ROLE_CODE[role] ? "ok" : "wrong_role";
  }

  /** Whether `token` was issued for this job to this worker id, and to a key of `role`. */
  async check(token: string | undefined, jobId: string, workerId: string, role: KeyRole): Promise<LeaseCheck> {
    const known = this.checkIssued(token, jobId, workerId, role);
    if (known !== undefined) return known;
    const parts = /^lt1\.([1-9]\d{0,8})\.([atr])\.([A-Za-z0-9_-]{43})$/.exec(token ?? "");
    if (!parts) return "invalid";
    const expected = await this.#mac(jobId, workerId, Number(parts[1]), parts[2]);
    if (!constantTimeEqual(expected, parts[3])) return "invalid";
    return parts[2] === ROLE_CODE[role] ? "ok" : "wrong_role";
  }

  async #mac(jobId: string, workerId: string, attempt: number, role: string): Promise<string> {
    return await hmacBase64url(this.#key, JSON.stringify([jobId, workerId, attempt, role]));
  }
}
