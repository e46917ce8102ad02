/**
 * The Hugging Face side of a download (download.ts): where files live on the hub and in the local cache, the
 * settings from the environment, and how the hub's HTTP answers become errors (retryable or explained).
 */
import { homedir } from "node:os";
import { join, resolve, sep } from "node:path";
import process from "node:process";

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export type DownloadErrorCode = "not_found" | "unauthorized" | "corrupt" | "disk_full" | "http" | "network" | "invalid";

export class DownloadError extends Error {
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    readonly repo: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DownloadError";
  }
}

/** Hub settings from the environment: HF_ENDPOINT, HF_TOKEN, AUXOT_MODELS_DIR. */
export function hubSettingsFromEnv(env: Record<string, string | undefined> = process.env): {
  endpoint: string;
  token: string | undefined;
  modelsDir: string;
} {
  return {
    endpoint: env.HF_ENDPOINT || DEFAULT_HF_ENDPOINT,
    token: env.HF_TOKEN || undefined,
    modelsDir: env.AUXOT_MODELS_DIR || join(homedir(), ".auxot", "models"),
  };
}

/** `{endpoint}/{repo}/resolve/{revision}/{file}`: the hub URL of a file (readGgufHeader can read it in ranges). */
export function hubFileUrl(endpoint: string, repo: string, file: string, revision = "main"): string {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${endpoint.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/** Where a repository file lives in the cache: `{modelsDir}/{owner}/{repo}/{path}`. */
export function localModelPath(modelsDir: string, repo: string, file: string): string {
  const root = resolve(modelsDir);
  const path = resolve(root, ...repo.split("/"), ...file.split("/"));
  const segments = [...repo.split("/"), ...file.split("/")];
  if (segments.some((s) => s === "" || s === "." || s === "..") || !path.startsWith(root + sep)) {
    throw new DownloadError("invalid", `Refusing unsafe repository path "${repo}/${file}"`, repo, file);
  }
  return path;
}

/** An error worth another attempt (connection lost, 5xx, 429, a short read). */
export class RetryableError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "RetryableError";
  }
}

export function httpError(response: Response, repo: string, file: string): Error {
  const code = response.headers.get("x-error-code");
  const status = response.status;
  if (status === 429 || status >= 500) {
    return new RetryableError(`HTTP ${status} from ${new URL(response.url || "http://x").host}`);
  }
  if (status === 404 && code === "RepoNotFound") {
    return new DownloadError("not_found", `Hugging Face repository "${repo}" not found (HTTP 404)`, repo, file);
  }
  if (status === 404) {
    return new DownloadError(
      "not_found",
      `File "${file}" not found in Hugging Face repository "${repo}" (HTTP 404)`,
      repo,
      file,
    );
  }
  if (status === 401 || status === 403) {
    const gated = code === "GatedRepo" ? "is gated: accept its terms on huggingface.co and " : "needs access: ";
    return new DownloadError(
      "unauthorized",
      `Hugging Face repository "${repo}" ${gated}set HF_TOKEN to a token that can read it (HTTP ${status} for ${file})`,
      repo,
      file,
    );
  }
  return new DownloadError("http", `HTTP ${status} downloading ${repo}/${file}`, repo, file);
}

export function normalizeEtag(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, "").replace(/^"|"$/g, "").toLowerCase() || undefined;
}

export function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    const timer = setTimeout(resolveSleep, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
