/** Response builders every route shares: JSON bodies and server-sent event streams. */

export function json(body: unknown, headers: Record<string, string> = {}, status = 200): Response {
  if (!plainExtras(headers, JSON_NAMES)) {
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
  }
  // The string body's default text/plain is replaced in place: the same header list as the record form gives.
  const response = new Response(JSON.stringify(body), { status });
  response.headers.set("content-type", "application/json");
  appendAll(response.headers, headers);
  return response;
}

/** An event stream no proxy buffers (`x-accel-buffering: no`) or caches. */
export function sse(body: ReadableStream<Uint8Array>, headers: Record<string, string>): Response {
  if (!plainExtras(headers, SSE_NAMES)) {
    return new Response(body, { headers: { ...SSE_HEADERS, ...headers } });
  }
  const response = new Response(body);
  appendAll(response.headers, SSE_HEADERS);
  appendAll(response.headers, headers);
  return response;
}

/*
 * Why headers are added after construction: a headers record in ResponseInit goes through WebIDL's record
 * conversion (own keys, descriptors, ByteString checks) — about 2 µs of a ~3 µs response on Deno, paid by every
 * chat answer and every worker poll and post. Added one by one the list is the same, provided the extra names
 * cannot collide with the fixed ones or with each other in another case (else the record form is used).
 */
const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};
const JSON_NAMES = ["content-type"];
const SSE_NAMES = Object.keys(SSE_HEADERS);

function plainExtras(headers: Record<string, string>, fixed: string[]): boolean {
  for (const name in headers) {
    if (name !== name.toLowerCase() || fixed.includes(name)) return false;
  }
  return true;
}

function appendAll(target: Headers, headers: Record<string, string>): void {
  for (const name in headers) target.append(name, headers[name]);
}
