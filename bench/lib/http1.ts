/**
 * A minimal HTTP/1.1 keep-alive client over one TCP connection, for the load generator: it sends pre-encoded
 * requests and times each response itself (first byte, first streamed content chunk, last byte) with nothing
 * between the socket and the clock. Understands Content-Length and chunked bodies; that is all the router, the
 * mock engine and the peer gateway send. Not a general client: no redirects, no pipelining, no TLS.
 */

export interface Endpoint {
  host: string;
  port: number;
}

export interface RequestSpec {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  /** JSON text. */
  body?: string;
}

export interface ResponseTiming {
  status: number;
  /** Milliseconds from sending the request. */
  firstByteMs: number;
  /** First server-sent event carrying non-empty `content` (only when `stream` was asked for). */
  firstContentMs?: number;
  endMs: number;
  bodyBytes: number;
  /** The body as text (when `keepBody` was asked for, or the status is an error). */
  body?: string;
  /** With `keepBody`: after each socket read, [characters of body so far, milliseconds from sending]. */
  reads?: [number, number][];
}

export interface SendOptions {
  stream?: boolean;
  keepBody?: boolean;
}

const encoder = new TextEncoder();
const CR = 13, LF = 10;
/**
 * A non-empty `"content":"…"` (or `reasoning_content`, or a completion's `text`) in an OpenAI chunk; the role
 * chunk's `"content":""` does not match.
 */
const CONTENT = /(?:content|text)":"(?:[^"\\]|\\.)/;

export function encodeRequest(endpoint: Endpoint, spec: RequestSpec): Uint8Array {
  const body = spec.body === undefined ? undefined : encoder.encode(spec.body);
  const lines = [`${spec.method} ${spec.path} HTTP/1.1`, `host: ${endpoint.host}:${endpoint.port}`];
  for (const [name, value] of Object.entries(spec.headers)) lines.push(`${name}: ${value}`);
  if (body) lines.push(`content-length: ${body.length}`);
  const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  if (!body) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

export class HttpError extends Error {}

export class Http1Connection {
  #conn: Deno.TcpConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(endpoint: Endpoint): Promise<Http1Connection> {
    const conn = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
    conn.setNoDelay(true);
    return new Http1Connection(conn);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer
    }
  }

  /** Sends one request and reads its whole response. Throws HttpError when the connection breaks. */
  async send(request: Uint8Array, options: SendOptions = {}): Promise<ResponseTiming> {
    const t0 = performance.now();
    let written = 0;
    while (written < request.length) written += await this.#conn.write(request.subarray(written));
    const headEnd = await this.#until(() => this.#find4(this.#start));
    const firstByteMs = performance.now() - t0;
    const head = latin1(this.#buf, this.#start, headEnd);
    this.#start = headEnd + 4;
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/.exec(lower);
    const chunked = /\r\ntransfer-encoding:\s*chunked/.test(lower);
    const closeAfter = /\r\nconnection:\s*close/.test(lower);

    // Error bodies are always kept: they say what went wrong.
    const keepBody = options.keepBody || status >= 400;
    const decoder = options.stream || keepBody ? new TextDecoder() : undefined;
    let tail = "";
    let body = "";
    let firstContentMs: number | undefined;
    let bodyBytes = 0;
    const reads: [number, number][] = [];
    const onData = (from: number, to: number) => {
      bodyBytes += to - from;
      if (!decoder) return;
      const text = decoder.decode(this.#buf.subarray(from, to), { stream: true });
      if (keepBody) {
        body += text;
        reads.push([body.length, performance.now() - t0]);
      }
      if (options.stream && firstContentMs === undefined) {
        const window = tail + text;
        if (CONTENT.test(window)) firstContentMs = performance.now() - t0;
        else tail = window.slice(-24);
      }
    };

    if (lengthMatch) {
      const length = Number(lengthMatch[1]);
      let remaining = length;
      while (remaining > 0) {
        if (this.#end === this.#start) await this.#fill();
        const take = Math.min(remaining, this.#end - this.#start);
        onData(this.#start, this.#start + take);
        this.#start += take;
        remaining -= take;
      }
    } else if (chunked) {
      for (;;) {
        const lineEnd = await this.#until(() => this.#findCrlf(this.#start));
        const size = parseInt(latin1(this.#buf, this.#start, lineEnd), 16);
        if (!Number.isFinite(size)) throw new HttpError("bad chunk size");
        this.#start = lineEnd + 2;
        if (size === 0) {
          // Optional trailers, then an empty line.
          for (;;) {
            const end = await this.#until(() => this.#findCrlf(this.#start));
            const empty = end === this.#start;
            this.#start = end + 2;
            if (empty) break;
          }
          break;
        }
        let remaining = size;
        while (remaining > 0) {
          if (this.#end === this.#start) await this.#fill();
          const take = Math.min(remaining, this.#end - this.#start);
          onData(this.#start, this.#start + take);
          this.#start += take;
          remaining -= take;
        }
        await this.#until(() => (this.#end - this.#start >= 2 ? this.#start : -1));
        this.#start += 2; // the CRLF after the chunk data
      }
    } else if (status !== 204 && status !== 304) {
      throw new HttpError(`response without a length (status ${status}): not supported`);
    }
    const endMs = performance.now() - t0;
    if (closeAfter) this.close();
    return {
      status,
      firstByteMs,
      endMs,
      bodyBytes,
      ...(firstContentMs !== undefined ? { firstContentMs } : {}),
      ...(keepBody ? { body, reads } : {}),
    };
  }

  /** Reads until `find` returns an index >= 0. */
  async #until(find: () => number): Promise<number> {
    for (;;) {
      const at = find();
      if (at >= 0) return at;
      await this.#fill();
    }
  }

  async #fill(): Promise<void> {
    if (this.#closed) throw new HttpError("connection closed");
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buf.subarray(this.#end));
    } catch (err) {
      this.close();
      throw new HttpError(`read failed: ${(err as Error).message}`);
    }
    if (n === null) {
      this.close();
      throw new HttpError("connection closed by the server");
    }
    this.#end += n;
  }

  #find4(from: number): number {
    const buf = this.#buf;
    for (let i = from; i + 3 < this.#end; i++) {
      if (buf[i] === CR && buf[i + 1] === LF && buf[i + 2] === CR && buf[i + 3] === LF) return i;
    }
    return -1;
  }

  #findCrlf(from: number): number {
    const buf = this.#buf;
    for (let i = from; i + 1 < this.#end; i++) {
      if (buf[i] === CR && buf[i + 1] === LF) return i;
    }
    return -1;
  }
}

function latin1(buf: Uint8Array, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) out += String.fromCharCode(buf[i]);
  return out;
}
