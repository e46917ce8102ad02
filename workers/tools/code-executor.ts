/**
 * The `code_executor` tool: runs JavaScript or TypeScript in a separate `deno run` process with no permissions
 * (no network, file system, environment or subprocesses unless the operator grants hosts or paths), and limits
 * that end in clean tool errors while the worker stays up:
 * - time: the process is killed past the time limit (wall clock), and past the same limit of CPU time summed over
 *   its threads (read from /proc: Web Workers cannot multiply it); `prlimit` (when installed) adds a kernel CPU
 *   limit, so even a process orphaned by a killed worker cannot spin forever;
 * - memory: V8's heap is capped (`--max-old-space-size`), and the resident size, which also counts ArrayBuffers
 *   outside that heap, is watched and the process killed past it;
 * - output: stdout and stderr together are capped; past it the process is killed and the first part returned.
 * Module loading is fenced too: Deno loads local modules without read permission, so an import map sends every
 * file: URL to an unreachable host (with --no-remote), and npm:/jsr:/remote imports are off.
 */
import { z } from "zod";
import { defineTool, type ServerTool, ToolError } from "./tool.ts";

export interface CodeExecutorOptions {
  /** The deno binary to run (the worker's own: Deno.execPath()). */
  denoPath: string;
  /** A private directory for the sandbox's import map, module cache and working directory. */
  workDir: string;
  /** Time limit (wall clock and CPU) per run; a call may ask for less, not more. */
  timeoutMs?: number;
  memoryMb?: number;
  maxOutputBytes?: number;
  /** Hosts the code may reach (Deno --allow-net syntax); none by default. */
  allowNet?: string[];
  /** Paths the code may read; none by default. */
  allowRead?: string[];
  /** Path of `prlimit`, when installed (a kernel CPU-time backstop). */
  prlimitPath?: string;
}

const MAX_CODE_CHARS = 200_000;
const WATCH_INTERVAL_MS = 50;
/** Resident memory the runtime itself needs on top of the heap limit (measured: ~35 MB idle). */
const RUNTIME_OVERHEAD_MB = 96;

const spec = defineTool(
  "code_executor",
  "Run JavaScript (or TypeScript) in a sandboxed Deno process and return what it prints (console.log). " +
    "No network and no file system access. Top-level await works. Limits on time, memory and output apply.",
  z.object({
    code: z.string().min(1).max(MAX_CODE_CHARS).describe("The program to run. Print results with console.log."),
    language: z.enum(["javascript", "typescript"]).default("javascript"),
    timeout_ms: z.number().int().min(100).max(600_000).optional().describe(
      "Time limit in milliseconds (capped by the worker's limit).",
    ),
  }).strict(),
);

type Outcome = "exit" | "timeout" | "cpu" | "memory" | "output";

export async function prepareCodeExecutor(options: CodeExecutorOptions): Promise<ServerTool> {
  const importMap = `${options.workDir}/import-map.json`;
  const blocked = "https://modules-are-disabled.invalid/";
  await Deno.writeTextFile(
    importMap,
    JSON.stringify({ imports: { "file:///": blocked, "/": blocked, "./": blocked, "../": blocked } }),
  );
  await Deno.mkdir(`${options.workDir}/cache`, { recursive: true });
  return codeExecutorTool(options, importMap);
}

function codeExecutorTool(options: CodeExecutorOptions, importMap: string): ServerTool {
  const limitMs = options.timeoutMs ?? 10_000;
  const memoryMb = options.memoryMb ?? 128;
  const maxOutput = options.maxOutputBytes ?? 64 * 1024;
  return {
    definition: spec.definition,
    async run(rawArgs, ctx) {
      const args = spec.parse(rawArgs);
      const timeoutMs = Math.min(limitMs, args.timeout_ms ?? limitMs);
      const denoArgs = [
        "run",
        "--no-prompt",
        "--no-config",
        "--no-lock",
        "--no-remote",
        "--no-npm",
        "--cached-only",
        `--import-map=${importMap}`,
        `--v8-flags=--max-old-space-size=${memoryMb}`,
        ...(options.allowNet?.length ? [`--allow-net=${options.allowNet.join(",")}`] : []),
        ...(options.allowRead?.length ? [`--allow-read=${options.allowRead.join(",")}`] : []),
        `--ext=${args.language === "typescript" ? "ts" : "js"}`,
        "-",
      ];
      const cpuSeconds = Math.ceil(timeoutMs / 1000) + 2;
      const [command, commandArgs] = options.prlimitPath
        ? [options.prlimitPath, [`--cpu=${cpuSeconds}:${cpuSeconds + 1}`, "--", options.denoPath, ...denoArgs]]
        : [options.denoPath, denoArgs];
      const child = new Deno.Command(command, {
        args: commandArgs,
        cwd: options.workDir,
        clearEnv: true,
        env: { NO_COLOR: "1", DENO_DIR: `${options.workDir}/cache`, DENO_NO_UPDATE_CHECK: "1", HOME: options.workDir },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let outcome: Outcome = "exit";
      const stop = (why: Outcome) => {
        if (outcome !== "exit") return;
        outcome = why;
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      };
      const onAbort = () => stop("timeout");
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      const wall = setTimeout(() => stop("timeout"), timeoutMs);
      const watch = setInterval(() => {
        const usage = processUsage(child.pid);
        if (!usage) return;
        if (usage.cpuMs > timeoutMs) stop("cpu");
        else if (usage.rssMb > memoryMb + RUNTIME_OVERHEAD_MB) stop("memory");
      }, WATCH_INTERVAL_MS);
      try {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(args.code)).catch(() => {});
        await writer.close().catch(() => {});
        const output = { budget: maxOutput };
        const [stdout, stderr, status] = await Promise.all([
          collect(child.stdout, output, () => stop("output")),
          collect(child.stderr, output, () => stop("output")),
          child.status,
        ]);
        if (ctx.signal.aborted) throw new ToolError("the run was cancelled");
        // V8 aborts (SIGTRAP/SIGABRT) when the heap limit is reached.
        if (outcome === "exit" && /Fatal JavaScript out of memory|heap limit/i.test(stderr)) outcome = "memory";
        if (outcome === "exit" && status.signal === "SIGXCPU") outcome = "cpu";
        return report(outcome, status.code, stdout, stderr, { timeoutMs, memoryMb, maxOutput });
      } finally {
        clearTimeout(wall);
        clearInterval(watch);
        ctx.signal.removeEventListener("abort", onAbort);
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }
    },
  };
}

/** Reads a stream into text while the shared budget lasts; past it, calls `exceeded` and keeps reading nothing. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  output: { budget: number },
  exceeded: () => void,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    if (chunk.byteLength > output.budget) {
      text += decoder.decode(chunk.subarray(0, output.budget), { stream: true });
      output.budget = 0;
      exceeded();
      continue;
    }
    output.budget -= chunk.byteLength;
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

function report(
  outcome: Outcome,
  code: number,
  stdout: string,
  stderr: string,
  limits: { timeoutMs: number; memoryMb: number; maxOutput: number },
): string {
  const shown = [stdout && `stdout:\n${stdout}`, stderr && `stderr:\n${stderr}`].filter(Boolean).join("\n\n");
  const partial = shown ? `\n\nOutput before it was stopped:\n${shown}` : "";
  switch (outcome) {
    case "timeout":
      throw new ToolError(`The code ran longer than ${limits.timeoutMs / 1000} s and was stopped.${partial}`);
    case "cpu":
      throw new ToolError(
        `The code used more than ${limits.timeoutMs / 1000} s of CPU time and was stopped.${partial}`,
      );
    case "memory":
      throw new ToolError(`The code used more than its ${limits.memoryMb} MB memory limit and was stopped.`);
    case "output":
      throw new ToolError(`The code printed more than ${limits.maxOutput} bytes and was stopped.${partial}`);
    case "exit":
      if (code !== 0) throw new ToolError(`The code failed (exit code ${code}).\n\n${shown || "(no output)"}`);
      if (!stderr) return stdout || "(the code printed nothing)";
      return shown;
  }
}

/** CPU time (all threads) and resident memory of a process, from /proc (undefined elsewhere or once it exited). */
function processUsage(pid: number): { cpuMs: number; rssMb: number } | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    // /proc reports CPU in USER_HZ ticks, 100 per second on Linux.
    return { cpuMs: ticks * 10, rssMb: rssKb / 1024 };
  } catch {
    return undefined;
  }
}
