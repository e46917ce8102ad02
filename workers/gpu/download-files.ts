/**
 * The local side of a download (download.ts): writing and hashing `.part` files, the `.verified.json` marker that
 * spares a verified file a second sha256 pass, and the free disk space checked before fetching.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, statfs, writeFile } from "node:fs/promises";

export interface VerifiedMarker {
  size: number;
  sha256?: string;
}

export async function writeAll(
  handle: Awaited<ReturnType<typeof open>>,
  data: Uint8Array,
  position: number,
): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written, position + written);
    written += bytesWritten;
  }
}

export async function hashFileRange(
  handle: Awaited<ReturnType<typeof open>>,
  length: number,
  hash: ReturnType<typeof createHash>,
): Promise<void> {
  const buffer = new Uint8Array(4 * 1024 * 1024);
  for (let at = 0; at < length;) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - at), at);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk);
  return hash.digest("hex");
}

export function markerPath(localPath: string): string {
  return `${localPath}.verified.json`;
}

export async function readMarker(localPath: string): Promise<VerifiedMarker | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(markerPath(localPath), "utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { size, sha256 } = parsed as Record<string, unknown>;
    return typeof size === "number" ? { size, sha256: typeof sha256 === "string" ? sha256 : undefined } : undefined;
  } catch {
    return undefined;
  }
}

export async function writeMarker(localPath: string, marker: VerifiedMarker): Promise<void> {
  await writeFile(markerPath(localPath), JSON.stringify(marker) + "\n");
}

export async function freeDiskBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return Number(fs.bavail) * Number(fs.bsize);
}
