/**
 * What the orchestrator (bench/main.ts) asks the load generator (bench/load.ts, a separate process) to do, and
 * what it answers: JSON on stdin, JSON on stdout. Schemas are shared so both sides agree and the answer is
 * checked once where it arrives.
 */
import { z } from "zod";

export const RequestSpecSchema = z.object({
  method: z.enum(["GET", "POST"]),
  path: z.string(),
  headers: z.record(z.string(), z.string()),
  body: z.string().optional(),
});

export const TargetSchema = z.object({
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  request: RequestSpecSchema,
  /** Processes whose CPU time is read around each measured window (throughput). */
  pids: z.array(z.number().int()).default([]),
});
export type Target = z.infer<typeof TargetSchema>;

/** Requests one after another on one keep-alive connection per target; rounds interleave the targets. */
export const SequentialPlanSchema = z.object({
  kind: z.literal("sequential"),
  targets: z.array(TargetSchema),
  warmup: z.number().int().nonnegative(),
  rounds: z.number().int().positive(),
  perRound: z.number().int().positive(),
  stream: z.boolean().default(false),
  keepBody: z.boolean().default(false),
});

/** One target, one connection, sequential requests for a fixed time (legitimate traffic beside a flood). */
export const TimedPlanSchema = z.object({
  kind: z.literal("timed"),
  target: TargetSchema,
  durationMs: z.number().int().positive(),
});

/** `connections` concurrent keep-alive loops per target for `durationMs` after `warmupMs`; rounds interleave. */
export const ThroughputPlanSchema = z.object({
  kind: z.literal("throughput"),
  targets: z.array(TargetSchema),
  rounds: z.number().int().positive(),
  connections: z.number().int().positive(),
  warmupMs: z.number().int().nonnegative(),
  durationMs: z.number().int().positive(),
});

/** Requests with a fresh well-formed but wrong API key each, from `sourceAddresses` loopback addresses. */
export const FloodPlanSchema = z.object({
  kind: z.literal("flood"),
  target: TargetSchema,
  connections: z.number().int().positive(),
  durationMs: z.number().int().positive(),
  sourceAddresses: z.number().int().min(1).max(250),
});

export const PlanSchema = z.discriminatedUnion("kind", [
  SequentialPlanSchema,
  TimedPlanSchema,
  ThroughputPlanSchema,
  FloodPlanSchema,
]);
export type Plan = z.input<typeof PlanSchema>;
/** A plan as checked on arrival (defaults filled in), narrowed by its kind. */
export type ParsedPlan<K extends Plan["kind"]> = Extract<z.output<typeof PlanSchema>, { kind: K }>;

const Sample = z.object({
  endMs: z.number(),
  firstContentMs: z.number().optional(),
  body: z.string().optional(),
  reads: z.array(z.tuple([z.number(), z.number()])).optional(),
});
export type Sample = z.infer<typeof Sample>;

const Failures = z.object({ errors: z.number().int(), firstError: z.string().optional() });

export const SequentialResultSchema = z.object({
  kind: z.literal("sequential"),
  targets: z.array(Failures.extend({ name: z.string(), rounds: z.array(z.array(Sample)) })),
});
export type SequentialResult = z.infer<typeof SequentialResultSchema>;

export const TimedResultSchema = z.object({
  kind: z.literal("timed"),
  samples: z.array(z.number()),
  ...Failures.shape,
});
export type TimedResult = z.infer<typeof TimedResultSchema>;

export const WindowSchema = z.object({
  requests: z.number().int(),
  seconds: z.number(),
  /** null when no request completed in the window. */
  p50: z.number().nullable(),
  p99: z.number().nullable(),
  /** CPU milliseconds used during the window, per watched PID (as a string key). */
  cpuMs: z.record(z.string(), z.number()),
  ...Failures.shape,
});
export type Window = z.infer<typeof WindowSchema>;

export const ThroughputResultSchema = z.object({
  kind: z.literal("throughput"),
  targets: z.array(z.object({ name: z.string(), rounds: z.array(WindowSchema) })),
});
export type ThroughputResult = z.infer<typeof ThroughputResultSchema>;

export const FloodResultSchema = z.object({
  kind: z.literal("flood"),
  requests: z.number().int(),
  statuses: z.record(z.string(), z.number().int()),
  ...Failures.shape,
});
export type FloodResult = z.infer<typeof FloodResultSchema>;
