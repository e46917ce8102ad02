/** Runs the GPU worker (`workers/gpu/main.ts`) as its own process against a test router, keeping its log lines. */
import { join } from "node:path";
import type { RouterTarget } from "./router.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface GpuWorkerProcess {
  stderr: string[];
  stop(): Promise<number>;
}

/** Starts `workers/gpu/main.ts` as a child process and keeps its log lines. */
export function spawnGpuWorker(router: RouterTarget, modelPath: string, extraArgs: string[] = []): GpuWorkerProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "workers/gpu/main.ts"),
      "--gpu-key",
      router.keys.admin,
      "--router-url",
      router.url,
      "--model-path",
      modelPath,
      "--threads",
      "1",
      ...extraArgs,
    ],
    env: { AUXOT_LOG_LEVEL: "debug", NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of child.stderr) {
      buffer += decoder.decode(chunk, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      stderr.push(...lines);
    }
  })();
  return {
    stderr,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const status = await child.status;
      await reading;
      return status.code;
    },
  };
}
