/**
 * A local stand-in for the Hugging Face hub, for tests that cannot reach the internet. It imitates what our
 * code relies on, as huggingface.co serves it:
 *   GET  /api/models/{repo}/tree/main?recursive=true   file list (path, size, lfs.oid = sha256), paginated with
 *                                                      a `Link: <...>; rel="next"` header
 *   HEAD/GET /{repo}/resolve/main/{path}                LFS files: 302 to a CDN on another origin, with
 *                                                      X-Linked-Size, X-Linked-Etag ("sha256"), X-Repo-Commit;
 *                                                      small git files: 200 with a git-sha1 ETag;
 *                                                      404 + X-Error-Code EntryNotFound / RepoNotFound;
 *                                                      401 + X-Error-Code GatedRepo without the token
 *   GET  {cdn}/{repo}/{path}                            the bytes, with Range support (206, Content-Range, 416)
 * It records every request (with whether an Authorization header came along) and counts the bytes it sends.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

export interface HubFile {
  path: string;
  /** Contents in memory, or a file on disk (served in ranges, e.g. a sparse skeleton GGUF). */
  data?: Uint8Array;
  diskPath?: string;
  size?: number;
  /** Stored through git LFS (the default): served via the CDN redirect with a sha256 etag. */
  lfs?: boolean;
  /** The sha256 to report (default: computed from the contents on first use; give one for huge sparse files). */
  sha256?: string;
}

export interface FakeHubOptions {
  repos: Record<string, HubFile[]>;
  /** Repositories that need `Authorization: Bearer {token}`. */
  gated?: { token: string; repos: string[] };
  /** Entries per tree page (default 1000, as the hub). */
  pageSize?: number;
  /** Paths whose bytes the CDN serves with one byte flipped (the hub still reports the true sha256). */
  corrupt?: string[];
  /** Path → bytes after which the CDN drops the connection, once per listed count (first GETs only). */
  dropAfter?: Record<string, number[]>;
  /** Answer this many of the first resolve requests with 503. */
  failFirstResolves?: number;
  /** Whether the CDN honours Range (default true). */
  ranges?: boolean;
}

export interface HubRequest {
  server: "hub" | "cdn";
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
  status: number;
}

export interface FakeHub {
  endpoint: string;
  cdn: string;
  requests: HubRequest[];
  /** Body bytes the CDN (and hub, for small files) sent, per path or in total. */
  bytesServed(path?: string): number;
  sha256Of(repo: string, path: string): Promise<string>;
  close(): Promise<void>;
}

interface StoredFile extends HubFile {
  repo: string;
  size: number;
}

const COMMIT = "0123456789abcdef0123456789abcdef01234567";

export function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const files = new Map<string, StoredFile>();
  for (const [repo, list] of Object.entries(options.repos)) {
    for (const file of list) {
      const size = file.size ?? file.data?.length;
      if (size === undefined) throw new Error(`${file.path}: give data or size`);
      files.set(`${repo}/${file.path}`, { ...file, repo, size });
    }
  }
  const requests: HubRequest[] = [];
  const served = new Map<string, number>();
  const drops = new Map(Object.entries(options.dropAfter ?? {}).map(([path, counts]) => [path, [...counts]]));
  let failResolves = options.failFirstResolves ?? 0;

  const sha256Of = async (file: StoredFile): Promise<string> => {
    if (file.sha256) return file.sha256;
    const hash = createHash("sha256");
    await readRange(file, 0, file.size, (chunk) => hash.update(chunk));
    file.sha256 = hash.digest("hex");
    return file.sha256;
  };

  const cdnServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const url = new URL(request.url);
    const key = decodeURIComponent(url.pathname.slice(1));
    const file = files.get(key);
    const log = (status: number) =>
      requests.push({
        server: "cdn",
        method: request.method,
        path: key,
        range: request.headers.get("range") ?? undefined,
        authorized: request.headers.has("authorization"),
        status,
      });
    if (!file) {
      log(404);
      return new Response("not found", { status: 404 });
    }
    const rangeHeader = options.ranges === false ? null : request.headers.get("range");
    let start = 0;
    let end = file.size - 1;
    let status = 200;
    const headers = new Headers({ "accept-ranges": "bytes", "content-type": "application/octet-stream" });
    if (rangeHeader) {
      const match = /^bytes=(\d+)-(\d*)$/.exec(rangeHeader);
      if (!match) {
        log(400);
        return new Response("bad range", { status: 400 });
      }
      start = Number(match[1]);
      end = match[2] ? Math.min(Number(match[2]), file.size - 1) : file.size - 1;
      if (start >= file.size) {
        log(416);
        return new Response(null, { status: 416, headers: { "content-range": `bytes */${file.size}` } });
      }
      status = 206;
      headers.set("content-range", `bytes ${start}-${end}/${file.size}`);
    }
    headers.set("content-length", String(end - start + 1));
    log(status);
    if (request.method === "HEAD") return new Response(null, { status, headers });
    const dropAt = drops.get(file.path)?.shift();
    const flip = options.corrupt?.includes(file.path) ? Math.floor(file.size / 2) : -1;
    return new Response(rangeStream(file, start, end + 1, { dropAt, flip, count: (n) => count(file.path, n) }), {
      status,
      headers,
    });
  });

  const count = (path: string, bytes: number) => served.set(path, (served.get(path) ?? 0) + bytes);
  const cdnOrigin = `http://127.0.0.1:${cdnServer.addr.port}`;

  const hubServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const authorization = request.headers.get("authorization");
    const log = (path: string, status: number) =>
      requests.push({ server: "hub", method: request.method, path, authorized: authorization !== null, status });
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/main\/?$/.exec(url.pathname);
    if (tree) {
      const repo = tree[1];
      if (!(repo in options.repos)) {
        log(url.pathname, 404);
        return Response.json({ error: "Repository not found" }, {
          status: 404,
          headers: { "x-error-code": "RepoNotFound" },
        });
      }
      if (!isAllowed(repo, authorization)) {
        log(url.pathname, 401);
        return Response.json({ error: "gated" }, { status: 401, headers: { "x-error-code": "GatedRepo" } });
      }
      const entries = await treeEntries(repo);
      const pageSize = options.pageSize ?? 1000;
      const from = Number(url.searchParams.get("cursor") ?? 0);
      const page = entries.slice(from, from + pageSize);
      const headers = new Headers();
      if (from + pageSize < entries.length) {
        headers.set(
          "link",
          `<${hubOrigin}/api/models/${repo}/tree/main?recursive=true&cursor=${from + pageSize}>; rel="next"`,
        );
      }
      log(url.pathname, 200);
      return Response.json(page, { headers });
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/(main|[0-9a-f]{40})\/(.+)$/.exec(url.pathname);
    if (!resolve) {
      log(url.pathname, 404);
      return new Response("not found", { status: 404 });
    }
    const repo = resolve[1];
    const path = decodeURIComponent(resolve[3]);
    // A pinned commit shows in the log (the fake hub serves the same files at every commit).
    const logPath = resolve[2] === "main" ? `${repo}/${path}` : `${repo}@${resolve[2]}/${path}`;
    if (failResolves > 0) {
      failResolves--;
      log(logPath, 503);
      return new Response("busy", { status: 503 });
    }
    if (!(repo in options.repos)) {
      log(logPath, 404);
      return new Response("Repository not found", { status: 404, headers: { "x-error-code": "RepoNotFound" } });
    }
    if (!isAllowed(repo, authorization)) {
      log(logPath, 401);
      return new Response("Access to this repo is restricted", {
        status: 401,
        headers: { "x-error-code": "GatedRepo", "x-error-message": "Access to model is restricted." },
      });
    }
    const file = files.get(`${repo}/${path}`);
    if (!file) {
      log(logPath, 404);
      return new Response("Entry not found", {
        status: 404,
        headers: { "x-error-code": "EntryNotFound", "x-error-message": "Entry not found" },
      });
    }
    if (file.lfs === false) {
      const data = file.data ?? new Uint8Array(0);
      log(logPath, 200);
      if (request.method !== "HEAD") count(file.path, data.length);
      return new Response(request.method === "HEAD" ? null : new Blob([data.slice()]), {
        headers: { etag: `"${gitBlobSha1(data)}"`, "content-length": String(data.length), "x-repo-commit": COMMIT },
      });
    }
    const sha = await sha256Of(file);
    log(logPath, 302);
    const location = `${cdnOrigin}/${repo}/${path.split("/").map(encodeURIComponent).join("/")}`;
    return new Response(request.method === "HEAD" ? null : `Found. Redirecting to ${location}`, {
      status: 302,
      headers: {
        location,
        "x-linked-size": String(file.size),
        "x-linked-etag": `"${sha}"`,
        etag: `"${sha}"`,
        "x-repo-commit": COMMIT,
      },
    });
  });
  const hubOrigin = `http://127.0.0.1:${hubServer.addr.port}`;

  function isAllowed(repo: string, authorization: string | null): boolean {
    if (!options.gated?.repos.includes(repo)) return true;
    return authorization === `Bearer ${options.gated.token}`;
  }

  async function treeEntries(repo: string): Promise<unknown[]> {
    const entries: Array<Record<string, unknown>> = [];
    const dirs = new Set<string>();
    for (const file of files.values()) {
      if (file.repo !== repo) continue;
      const parts = file.path.split("/");
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
      const entry: Record<string, unknown> = {
        type: "file",
        oid: gitBlobSha1(new TextEncoder().encode(file.path)),
        size: file.size,
        path: file.path,
      };
      if (file.lfs !== false) entry.lfs = { oid: await sha256Of(file), size: file.size, pointerSize: 135 };
      entries.push(entry);
    }
    for (const dir of dirs) {
      entries.push({ type: "directory", oid: gitBlobSha1(new TextEncoder().encode(dir)), size: 0, path: dir });
    }
    return entries.sort((a, b) => (String(a.path) < String(b.path) ? -1 : 1));
  }

  return Promise.resolve({
    endpoint: hubOrigin,
    cdn: cdnOrigin,
    requests,
    bytesServed: (path) => path === undefined ? [...served.values()].reduce((a, b) => a + b, 0) : served.get(path) ?? 0,
    sha256Of: (repo, path) => {
      const file = files.get(`${repo}/${path}`);
      if (!file) throw new Error(`no ${repo}/${path}`);
      return sha256Of(file);
    },
    close: async () => {
      await Promise.all([hubServer.shutdown(), cdnServer.shutdown()]);
    },
  });
}

const CHUNK = 64 * 1024;

function rangeStream(
  file: StoredFile,
  start: number,
  end: number,
  options: { dropAt?: number; flip: number; count: (bytes: number) => void },
): ReadableStream<Uint8Array> {
  let position = start;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  const closeHandle = async () => {
    await handle?.close();
    handle = undefined;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (options.dropAt !== undefined && position - start >= options.dropAt) {
        // Ending short of Content-Length makes the server drop the connection mid-body.
        await closeHandle();
        controller.close();
        return;
      }
      if (position >= end) {
        await closeHandle();
        controller.close();
        return;
      }
      let length = Math.min(CHUNK, end - position);
      if (options.dropAt !== undefined) length = Math.min(length, start + options.dropAt - position);
      let chunk: Uint8Array;
      if (file.data) {
        chunk = file.data.slice(position, position + length);
      } else {
        handle ??= await open(file.diskPath!, "r");
        chunk = new Uint8Array(length);
        await handle.read(chunk, 0, length, position);
      }
      if (options.flip >= position && options.flip < position + length) chunk[options.flip - position] ^= 0xff;
      position += length;
      options.count(length);
      controller.enqueue(chunk);
    },
    async cancel() {
      await closeHandle();
    },
  }, { highWaterMark: 0 });
}

async function readRange(file: StoredFile, start: number, end: number, onChunk: (chunk: Uint8Array) => void) {
  if (file.data) {
    onChunk(file.data.subarray(start, end));
    return;
  }
  const handle = await open(file.diskPath!, "r");
  try {
    const buffer = new Uint8Array(4 * 1024 * 1024);
    for (let at = start; at < end;) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - at), at);
      if (bytesRead === 0) break;
      onChunk(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** Git's blob id (sha1 of "blob {size}\0" + data): what the hub's ETag is for non-LFS files. */
function gitBlobSha1(data: Uint8Array): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}
