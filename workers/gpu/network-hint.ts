/**
 * What to tell a person when the model host cannot be reached: which host, what failed (the cause under undici's
 * bare "fetch failed"), and the two ways out — a mirror (HF_ENDPOINT) or a local file (--model-path).
 */

/** The innermost useful reason: `fetch failed` → `getaddrinfo ENOTFOUND huggingface.co` / `ECONNREFUSED`. */
export function networkCause(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && depth < 4; depth++) {
    const e = current as { message?: unknown; code?: unknown; cause?: unknown };
    const text = typeof e.message === "string" ? e.message : String(current);
    if (text && !parts.includes(text)) parts.push(text);
    if (typeof e.code === "string" && !parts.some((p) => p.includes(e.code as string))) parts.push(e.code);
    current = e.cause;
  }
  return parts.join(": ") || "unknown error";
}

/** Whether an error is the network failing (no answer at all), as opposed to an HTTP or format error. */
export function isNetworkFailure(err: unknown): boolean {
  return err instanceof TypeError || /ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|fetch failed/
    .test(networkCause(err));
}

/** "Could not reach huggingface.co (…): … Fix: …" for a URL that failed with `err`. */
export function unreachableHostMessage(url: string, err: unknown): string {
  const endpoint = new URL(url);
  return `Could not reach ${endpoint.host} (${endpoint.origin}, the model host): ${networkCause(err)}. ` +
    "Check this machine's network and proxy, set HF_ENDPOINT to a Hugging Face mirror this machine can reach, " +
    "or start the worker with --model-path FILE (a GGUF file already on disk).";
}
