/**
 * Runs the load generator (bench/load.ts) as a child process with one plan and returns its checked result.
 */
import {
  type FloodResult,
  FloodResultSchema,
  type Plan,
  type SequentialResult,
  SequentialResultSchema,
  type ThroughputResult,
  ThroughputResultSchema,
  type TimedResult,
  TimedResultSchema,
} from "./plan.ts";

const LOAD_SCRIPT = new URL("../load.ts", import.meta.url).pathname;

async function runPlan(plan: Plan, timeoutMs: number): Promise<unknown> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", LOAD_SCRIPT],
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(plan)));
  await writer.close();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  const output = await child.output().finally(() => clearTimeout(timer));
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (!output.success || !stdout) {
    const stderr = new TextDecoder().decode(output.stderr).slice(-2_000);
    throw new Error(
      `load generator failed (code ${output.code}${output.signal ? `, ${output.signal}` : ""}):\n${stderr}`,
    );
  }
  return JSON.parse(stdout.slice(stdout.lastIndexOf("\n") + 1));
}

type Kind<K extends Plan["kind"]> = Extract<Plan, { kind: K }>;

export async function runSequential(
  plan: Omit<Kind<"sequential">, "kind">,
  timeoutMs: number,
): Promise<SequentialResult> {
  return SequentialResultSchema.parse(await runPlan({ kind: "sequential", ...plan }, timeoutMs));
}

export async function runTimed(plan: Omit<Kind<"timed">, "kind">): Promise<TimedResult> {
  return TimedResultSchema.parse(await runPlan({ kind: "timed", ...plan }, plan.durationMs + 30_000));
}

export async function runThroughput(plan: Omit<Kind<"throughput">, "kind">): Promise<ThroughputResult> {
  const windows = plan.targets.length * plan.rounds;
  const timeoutMs = windows * (plan.warmupMs + plan.durationMs + 15_000) + 30_000;
  return ThroughputResultSchema.parse(await runPlan({ kind: "throughput", ...plan }, timeoutMs));
}

export async function runFlood(plan: Omit<Kind<"flood">, "kind">): Promise<FloodResult> {
  return FloodResultSchema.parse(await runPlan({ kind: "flood", ...plan }, plan.durationMs + 30_000));
}
