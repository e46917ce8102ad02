/**
 * Downloads a model from Hugging Face into the local model cache: every shard of a split model
 * (`-00001-of-0000N`), plus the vision projector when the registry lists one. Each file is fetched from
 * `{endpoint}/{repo}/resolve/{revision}/{file}` into `{file}.part`, resumed with a Range request after an
 * interruption, checked against the size and sha256 the hub reports (HEAD: `X-Linked-Size`, `X-Linked-Etag`),
 * and renamed into place only once verified. A verified file is not fetched again.
 *
 * Runs under Node and Deno (node: modules and fetch only). The token (HF_TOKEN) goes to the hub only: redirects
 * to another origin (the hub's CDN) are followed without it, as huggingface_hub does, and it is never logged.
 */
import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { shardFileNames } from "../../src/registry/model-files.ts";
import { type DownloadProgress, formatBytes } from "./download-progress.ts";
import {
  freeDiskBytes,
  hashFileRange,
  markerPath,
  readMarker,
  sha256OfFile,
  writeAll,
  writeMarker,
} from "./download-files.ts";
import {
  DownloadError,
  errorMessage,
  httpError,
  hubFileUrl,
  hubSettingsFromEnv,
  localModelPath,
  normalizeEtag,
  RetryableError,
  sleepFor,
} from "./download-hub.ts";

export { createProgressReporter, type DownloadProgress, formatProgressLine } from "./download-progress.ts";
export {
  DEFAULT_HF_ENDPOINT,
  DownloadError,
  type DownloadErrorCode,
  hubFileUrl,
  hubSettingsFromEnv,
  localModelPath,
} from "./download-hub.ts";

/** onProgress is called at most this often per file (plus once when the file is done). */
const PROGRESS_EVERY_MS = 250;

export interface DownloadModelOptions {
  repo: string;
  /** The model file, or the first shard of a split model. */
  file: string;
  /** Vision projector file in the same repository. */
  mmproj?: string;
  /** Hub URL (HF_ENDPOINT). Default https://huggingface.co. */
  endpoint?: string;
  /** HF_TOKEN, sent as a Bearer token to the hub for gated repositories. */
  token?: string;
  /** Cache directory (AUXOT_MODELS_DIR). Default ~/.auxot/models. */
  modelsDir?: string;
  revision?: string;
  /** Pinned sha256 per file (the registry's): only these bytes are accepted, whatever the hub reports. */
  sha256?: Record<string, string>;
  onProgress?: (progress: DownloadProgress) => void;
  /** Attempts per file for network errors, 5xx and 429 (each resumes). Default 6. */
  attempts?: number;
  /** Backoff base and cap in milliseconds (full jitter). Default 1000 and 30000. */
  backoffMs?: { base: number; max: number };
  signal?: AbortSignal;
  /** Injected for tests: waiting between attempts, the clock, free disk space, fetch. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  freeDiskBytes?: (dir: string) => Promise<number>;
  fetch?: typeof fetch;
}

export interface DownloadedModel {
  /** Local path of the model file (the first shard of a split model): what llama.cpp loads. */
  path: string;
  /** Local paths of every model file (shards in order). */
  files: string[];
  mmprojPath?: string;
  /** Bytes transferred by this call (0 when everything was already cached). */
  downloadedBytes: number;
}

/** What the hub says about a file before we fetch it. */
interface RemoteFile {
  file: string;
  url: string;
  size: number;
  /** sha256 for LFS files (X-Linked-Etag); absent for small git files, whose ETag is a git hash. */
  sha256: string | undefined;
  localPath: string;
  partPath: string;
  /** True when the local copy is already verified. */
  cached: boolean;
  /** Bytes of a partial download to resume from. */
  partBytes: number;
}

/** Downloads (or finds in the cache) every file of a model; returns the local path of the first. */
export async function downloadModel(options: DownloadModelOptions): Promise<DownloadedModel> {
  const defaults = hubSettingsFromEnv();
  const settings = {
    endpoint: (options.endpoint ?? defaults.endpoint).replace(/\/+$/, ""),
    token: options.token ?? defaults.token,
    modelsDir: options.modelsDir ?? defaults.modelsDir,
    revision: options.revision ?? "main",
  };
  const modelFiles = shardFileNames(options.file);
  const allFiles = options.mmproj ? [...modelFiles, options.mmproj] : modelFiles;
  const context = new DownloadContext(options, settings.endpoint, settings.token);

  const remotes: RemoteFile[] = [];
  for (const file of allFiles) {
    const url = hubFileUrl(settings.endpoint, options.repo, file, settings.revision);
    const localPath = localModelPath(settings.modelsDir, options.repo, file);
    remotes.push(await context.inspect(options.repo, file, url, localPath));
  }

  const needed = remotes.filter((r) => !r.cached).reduce((sum, r) => sum + r.size - r.partBytes, 0);
  if (needed > 0) {
    await mkdir(settings.modelsDir, { recursive: true });
    const free = await (options.freeDiskBytes ?? freeDiskBytes)(settings.modelsDir);
    if (free < needed) {
      throw new DownloadError(
        "disk_full",
        `Not enough disk space in ${settings.modelsDir} for ${options.repo}/${options.file}: ` +
          `${formatBytes(needed)} to download, ${formatBytes(free)} free`,
        options.repo,
        options.file,
      );
    }
  }

  const overallTotal = remotes.reduce((sum, r) => sum + r.size, 0);
  let overallDone = 0;
  let downloadedBytes = 0;
  for (const [index, remote] of remotes.entries()) {
    if (!remote.cached) {
      downloadedBytes += await context.fetchFile(options.repo, remote, {
        fileIndex: index + 1,
        fileCount: remotes.length,
        overallBefore: overallDone,
        overallTotal,
      });
    }
    overallDone += remote.size;
  }
  const local = remotes.map((r) => r.localPath);
  return {
    path: local[0],
    files: local.slice(0, modelFiles.length),
    mmprojPath: options.mmproj ? local[local.length - 1] : undefined,
    downloadedBytes,
  };
}

class DownloadContext {
  private readonly fetchImpl: typeof fetch;
  private readonly hubOrigin: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(private readonly options: DownloadModelOptions, endpoint: string, private readonly token?: string) {
    this.fetchImpl = options.fetch ?? fetch;
    this.hubOrigin = new URL(endpoint).origin;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleepFor;
  }

  /** HEAD the file on the hub and look at what the cache holds for it. */
  async inspect(repo: string, file: string, url: string, localPath: string): Promise<RemoteFile> {
    const partPath = `${localPath}.part`;
    const marker = await readMarker(localPath);
    const existing = await stat(localPath).catch(() => undefined);
    const verifiedLocally = marker !== undefined && existing?.size === marker.size;
    let head: { size: number; sha256: string | undefined };
    try {
      // With a verified copy at hand, one try is enough: if the hub is unreachable, the copy is used.
      head = await this.withRetries(repo, file, () => this.head(repo, file, url), verifiedLocally ? 1 : undefined);
    } catch (err) {
      if (!(verifiedLocally && err instanceof DownloadError && err.code === "network")) throw err;
      const pin = this.options.sha256?.[file];
      if (pin && marker.sha256 !== pin) throw err;
      return { file, url, localPath, partPath, size: marker.size, sha256: marker.sha256, cached: true, partBytes: 0 };
    }
    const pin = this.options.sha256?.[file];
    if (pin) {
      if (head.sha256 && head.sha256 !== pin) {
        throw new DownloadError(
          "corrupt",
          `${repo}/${file}: the hub serves sha256 ${head.sha256}, but the registry pins ${pin}; not downloaded`,
          repo,
          file,
        );
      }
      head = { ...head, sha256: pin };
    }
    const remote: RemoteFile = { ...head, file, url, localPath, partPath, cached: false, partBytes: 0 };
    if (existing) {
      if (existing.size === head.size && (!head.sha256 || marker?.sha256 === head.sha256)) {
        remote.cached = true;
        return remote;
      }
      // A file from before this cache kept markers, or a different version on the hub: check it once.
      if (existing.size === head.size && head.sha256 && (await sha256OfFile(localPath)) === head.sha256) {
        await writeMarker(localPath, { size: head.size, sha256: head.sha256 });
        remote.cached = true;
        return remote;
      }
      await rm(localPath, { force: true });
      await rm(markerPath(localPath), { force: true });
    }
    const part = await stat(partPath).catch(() => undefined);
    remote.partBytes = part && part.size <= head.size ? part.size : 0;
    return remote;
  }

  private async head(repo: string, file: string, url: string): Promise<{ size: number; sha256: string | undefined }> {
    // Not following the redirect: the hub's own answer carries X-Linked-Size / X-Linked-Etag, the CDN's does not.
    let current = url;
    for (let hop = 0; hop < 5; hop++) {
      const response = await this.fetchImpl(current, {
        method: "HEAD",
        headers: this.headersFor(current, { "accept-encoding": "identity" }),
        redirect: "manual",
        signal: this.options.signal,
      });
      await response.body?.cancel();
      const location = response.headers.get("location");
      const isRedirect = response.status >= 300 && response.status < 400 && location;
      const next = isRedirect ? new URL(location, current) : undefined;
      // Relative redirects (a renamed repository) lead to the hub again: follow them for its headers.
      if (next && next.origin === new URL(current).origin && !response.headers.get("x-linked-size")) {
        current = next.href;
        continue;
      }
      if (!response.ok && !isRedirect) throw httpError(response, repo, file);
      const sizeHeader = response.headers.get("x-linked-size") ?? response.headers.get("content-length");
      const size = Number(sizeHeader);
      if (sizeHeader === null || !Number.isSafeInteger(size) || size < 0) {
        throw new DownloadError("http", `The hub did not report the size of ${repo}/${file}`, repo, file);
      }
      const etag = normalizeEtag(response.headers.get("x-linked-etag") ?? response.headers.get("etag"));
      return { size, sha256: etag && /^[0-9a-f]{64}$/.test(etag) ? etag : undefined };
    }
    throw new DownloadError("http", `Too many redirects for ${repo}/${file}`, repo, file);
  }

  /** Downloads one file into its .part, verifies it and renames it into place; returns bytes transferred. */
  async fetchFile(
    repo: string,
    remote: RemoteFile,
    position: { fileIndex: number; fileCount: number; overallBefore: number; overallTotal: number },
  ): Promise<number> {
    await mkdir(dirname(remote.localPath), { recursive: true });
    let transferred = 0;
    const startedAt = this.now();
    let lastReport = -Infinity;
    const report = (received: number, done: boolean) => {
      const time = this.now();
      if (!done && time - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = time;
      const elapsed = Math.max(1, time - startedAt) / 1000;
      const bytesPerSecond = transferred / elapsed;
      const left = position.overallTotal - position.overallBefore - received;
      this.options.onProgress?.({
        file: remote.file,
        fileIndex: position.fileIndex,
        fileCount: position.fileCount,
        receivedBytes: received,
        totalBytes: remote.size,
        overallReceivedBytes: position.overallBefore + received,
        overallTotalBytes: position.overallTotal,
        bytesPerSecond,
        etaSeconds: bytesPerSecond > 0 ? left / bytesPerSecond : undefined,
        done,
      });
    };
    const hash = await this.withRetries(repo, remote.file, async () => {
      const result = await this.transfer(repo, remote, (bytes, received) => {
        transferred += bytes;
        report(received, false);
      });
      return result;
    });
    const size = (await stat(remote.partPath)).size;
    if (size !== remote.size || (remote.sha256 && hash !== remote.sha256)) {
      await rm(remote.partPath, { force: true });
      const detail = size !== remote.size
        ? `size ${size} bytes, the hub says ${remote.size}`
        : `sha256 ${hash}, the hub says ${remote.sha256}`;
      throw new DownloadError(
        "corrupt",
        `Downloaded ${repo}/${remote.file} is corrupted (${detail}); the partial file was deleted, ` +
          `start again to download it afresh`,
        repo,
        remote.file,
      );
    }
    await rename(remote.partPath, remote.localPath);
    await writeMarker(remote.localPath, { size: remote.size, sha256: remote.sha256 });
    report(remote.size, true);
    return transferred;
  }

  /** One attempt: resume the .part from its current length; returns the sha256 of the whole file. */
  private async transfer(
    repo: string,
    remote: RemoteFile,
    onChunk: (bytes: number, received: number) => void,
  ): Promise<string> {
    const hash = createHash("sha256");
    let offset = (await stat(remote.partPath).catch(() => undefined))?.size ?? 0;
    if (offset > remote.size) offset = 0;
    const response = offset === remote.size ? undefined : await this.get(repo, remote, offset);
    if (response?.status === 200 && offset > 0) offset = 0; // Range ignored: the whole file is coming.
    if (response?.status === 416) {
      await response.body?.cancel();
      await rm(remote.partPath, { force: true });
      throw new RetryableError(`range not satisfiable at ${offset}; starting over`);
    }
    const handle = await open(remote.partPath, offset === 0 ? "w" : "r+");
    try {
      if (offset > 0) await hashFileRange(handle, offset, hash);
      if (!response?.body) return hash.digest("hex");
      let position = offset;
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await writeAll(handle, value, position);
          hash.update(value);
          position += value.length;
          onChunk(value.length, position);
        }
      } catch (err) {
        if (this.options.signal?.aborted) throw err;
        throw new RetryableError(`connection lost after ${position} bytes`, err);
      }
      if (position < remote.size) throw new RetryableError(`stream ended at ${position} of ${remote.size} bytes`);
      return hash.digest("hex");
    } finally {
      await handle.close();
    }
  }

  private async get(repo: string, remote: RemoteFile, offset: number): Promise<Response> {
    let current = remote.url;
    for (let hop = 0; hop < 5; hop++) {
      const extra: Record<string, string> = { "accept-encoding": "identity" };
      if (offset > 0) extra.range = `bytes=${offset}-`;
      let response: Response;
      try {
        response = await this.fetchImpl(current, {
          headers: this.headersFor(current, extra),
          redirect: "manual",
          signal: this.options.signal,
        });
      } catch (err) {
        if (this.options.signal?.aborted) throw err;
        throw new RetryableError(`request failed: ${errorMessage(err)}`, err);
      }
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel();
        current = new URL(location, current).href;
        continue;
      }
      if (response.status === 206) {
        const start = /bytes (\d+)-/.exec(response.headers.get("content-range") ?? "")?.[1];
        if (Number(start) !== offset) {
          await response.body?.cancel();
          throw new RetryableError(`server answered range ${response.headers.get("content-range")} for ${offset}-`);
        }
        return response;
      }
      if (response.status === 200 || response.status === 416) return response;
      await response.body?.cancel();
      throw httpError(response, repo, remote.file);
    }
    throw new DownloadError("http", `Too many redirects for ${repo}/${remote.file}`, repo, remote.file);
  }

  /** The token goes to the hub's origin only, never to a CDN it redirects to. */
  private headersFor(url: string, extra: Record<string, string>): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": "auxot-worker", ...extra };
    if (this.token && new URL(url).origin === this.hubOrigin) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  /** Retries network errors, 429 and 5xx with jittered exponential backoff; other errors end at once. */
  private async withRetries<T>(repo: string, file: string, attempt: () => Promise<T>, tries?: number): Promise<T> {
    const attempts = tries ?? this.options.attempts ?? 6;
    const { base, max } = this.options.backoffMs ?? { base: 1000, max: 30_000 };
    for (let n = 1;; n++) {
      try {
        return await attempt();
      } catch (err) {
        const retryable = err instanceof RetryableError || (err instanceof TypeError && !this.options.signal?.aborted);
        if (!retryable) throw err;
        if (n >= attempts) {
          throw new DownloadError(
            "network",
            `Downloading ${repo}/${file} failed after ${attempts} attempts: ${errorMessage(err)}`,
            repo,
            file,
            { cause: err },
          );
        }
        // Full jitter: spreads retries of many workers hitting the same outage.
        await this.sleep(Math.random() * Math.min(max, base * 2 ** (n - 1)), this.options.signal);
      }
    }
  }
}
