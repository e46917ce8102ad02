/**
 * How much of each measurement a run does: the full suite (`deno task bench`, under 15 minutes on 2 cores) and
 * the quick mode (`--quick`, well under a minute, only to prove the harness works: its figures mean nothing).
 */

export interface Settings {
  mode: "full" | "quick";
  latency: { warmup: number; rounds: number; perRound: number };
  streaming: { warmup: number; rounds: number; perRound: number; tokens: number; intervalMs: number };
  throughput: { rounds: number; connections: number; warmupMs: number; durationMs: number };
  commands: {
    requests: number;
    /** Long streams for the commands-per-stream figure, at a realistic GPU speed. */
    longStreams: number;
    longStreamTokens: number;
    longStreamIntervalMs: number;
    /** Shortest idle window for the per-idle-worker-minute figure. */
    minIdleMs: number;
  };
  auth: { cachedCalls: number; batches: number; firstVerifications: number; floodMs: number; floodConnections: number };
  inference: {
    runs: number;
    maxTokens: number;
    ctxSize: number;
    cacheRounds: number;
    /** Characters of the long shared system prompt (~0.8 tokens a character with the tiny model's tokenizer). */
    prefixChars: number;
  };
  /** Paced streams (tokens/s at the engine) relayed through each gateway: tokens = max(minTokens, rate × seconds). */
  relay: {
    rates: number[];
    streamSeconds: number;
    minTokens: number;
    warmup: number;
    rounds: number;
    perRound: number;
  };
  /** Slots of each external-engine worker: enough for every throughput connection to have a job running. */
  workerSlots: number;
}

export const FULL: Settings = {
  mode: "full",
  latency: { warmup: 1_500, rounds: 7, perRound: 200 },
  streaming: { warmup: 20, rounds: 5, perRound: 20, tokens: 50, intervalMs: 2 },
  throughput: { rounds: 3, connections: 64, warmupMs: 2_000, durationMs: 5_000 },
  commands: {
    requests: 200,
    longStreams: 2,
    longStreamTokens: 500,
    longStreamIntervalMs: 10,
    // Two full idle cycles of a worker (a claim every other 50 s poll): shorter windows alias.
    minIdleMs: 200_000,
  },
  auth: { cachedCalls: 20_000, batches: 5, firstVerifications: 5, floodMs: 8_000, floodConnections: 16 },
  inference: { runs: 5, maxTokens: 400, ctxSize: 4_096, cacheRounds: 5, prefixChars: 3_000 },
  relay: { rates: [50, 200, 1_000], streamSeconds: 1, minTokens: 50, warmup: 1, rounds: 3, perRound: 2 },
  workerSlots: 64,
};

export const QUICK: Settings = {
  mode: "quick",
  latency: { warmup: 20, rounds: 2, perRound: 20 },
  streaming: { warmup: 2, rounds: 1, perRound: 3, tokens: 10, intervalMs: 1 },
  throughput: { rounds: 1, connections: 8, warmupMs: 200, durationMs: 700 },
  commands: { requests: 10, longStreams: 1, longStreamTokens: 40, longStreamIntervalMs: 2, minIdleMs: 2_000 },
  auth: { cachedCalls: 500, batches: 2, firstVerifications: 1, floodMs: 700, floodConnections: 4 },
  inference: { runs: 1, maxTokens: 96, ctxSize: 1_024, cacheRounds: 1, prefixChars: 600 },
  relay: { rates: [50, 200, 1_000], streamSeconds: 0.1, minTokens: 5, warmup: 0, rounds: 1, perRound: 1 },
  workerSlots: 8,
};
