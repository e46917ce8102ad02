/**
 * Download progress for people and logs: a redrawn bar with size, speed and ETA when stderr is a terminal, and a
 * plain line every few seconds otherwise, handed to a callback so the worker can log it structurally.
 */
import process from "node:process";

export interface DownloadProgress {
  /** Repository path of the file being fetched. */
  file: string;
  /** 1-based position of this file among all files of the download, and their count. */
  fileIndex: number;
  fileCount: number;
  /** Bytes of this file on disk so far (including a resumed part) and its size. */
  receivedBytes: number;
  totalBytes: number;
  /** All files together. */
  overallReceivedBytes: number;
  overallTotalBytes: number;
  /** Average speed since this file's transfer started, and the time left for everything at that speed. */
  bytesPerSecond: number;
  etaSeconds: number | undefined;
  /** Set on the last report of a file. */
  done: boolean;
}

/** "1.2 GB" (10^9 bytes, like the hub and disk tools). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** One line describing progress: "[3/4] Q4_K_S-00003-of-00004.gguf 42% 8.4 GB/20.1 GB 95.2 MB/s ETA 2m03s". */
export function formatProgressLine(p: DownloadProgress): string {
  const percent = p.overallTotalBytes > 0 ? Math.floor((p.overallReceivedBytes / p.overallTotalBytes) * 100) : 100;
  const name = p.file.slice(p.file.lastIndexOf("/") + 1);
  return `[${p.fileIndex}/${p.fileCount}] ${name} ${percent}% ${formatBytes(p.overallReceivedBytes)}/` +
    `${formatBytes(p.overallTotalBytes)} ${formatBytes(p.bytesPerSecond)}/s ETA ${formatDuration(p.etaSeconds)}`;
}

export interface ProgressReporterOptions {
  /** Where a bar is drawn (default process.stderr); a bar only when `isTTY`. */
  stream?: { isTTY?: boolean; write(text: string): unknown };
  /** Called with a line and the progress every `intervalMs` when the stream is not a terminal (worker logs). */
  log?: (line: string, progress: DownloadProgress) => void;
  /** Default 10000 for log lines, 200 for the bar. */
  intervalMs?: number;
  now?: () => number;
}

/**
 * An `onProgress` handler: a redrawn bar with size, speed and ETA when stderr is a terminal, else a progress
 * line every `intervalMs` (and at the end of each file) passed to `log`, so the worker can log it structurally.
 */
export function createProgressReporter(options: ProgressReporterOptions = {}): (progress: DownloadProgress) => void {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const interval = options.intervalMs ?? (tty ? 200 : 10_000);
  const now = options.now ?? Date.now;
  let last = -Infinity;
  return (progress) => {
    const time = now();
    if (!progress.done && time - last < interval) return;
    last = time;
    const line = formatProgressLine(progress);
    if (tty) {
      const width = 24;
      const fraction = progress.overallTotalBytes > 0 ? progress.overallReceivedBytes / progress.overallTotalBytes : 1;
      const filled = Math.round(fraction * width);
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      const end = progress.done && progress.fileIndex === progress.fileCount ? "\n" : "";
      stream.write(`\r\x1b[2K${bar} ${line}${end}`);
    } else {
      (options.log ?? ((text: string) => stream.write(text + "\n")))(line, progress);
    }
  };
}
