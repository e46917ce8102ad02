/**
 * The GPU engine's slots (llama-engine.ts): one llama.cpp context whose sequences are the parallel slots, created as
 * large as memory allows, and the choice of a free slot for a job by the prompt-cache prefix it already holds.
 */
import {
  GgufFileType,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { Policy } from "../../src/protocol/worker-protocol.ts";

/** Smallest per-slot context tried when memory runs short. */
const MIN_CTX = 512;

export interface Slot {
  sequence: LlamaContextSequence;
  busy: boolean;
  /** Conversation whose tokens this slot holds (for prompt-cache affinity). */
  conversationKey?: string;
  lastUsed: number;
}

export interface CreatedSlots {
  context: LlamaContext;
  slots: Slot[];
  /** Context per slot, and the number of slots: lower than the policy's when memory ran short. */
  ctxSize: number;
  parallel: number;
  /** Why the worker chose less than the policy asked for. */
  notes: string[];
}

/** The policy's context and slots, or fewer slots first and shorter ones next when (V)RAM runs out. */
export async function createSlots(
  model: LlamaModel,
  policy: Policy,
  options: { threads?: number; log?: (message: string) => void },
): Promise<CreatedSlots> {
  const notes: string[] = [];
  let ctxSize = policy.ctxSize;
  if (model.trainContextSize > 0 && ctxSize > model.trainContextSize) {
    ctxSize = model.trainContextSize;
    notes.push(`ctx lowered to ${ctxSize}: the model was trained on ${ctxSize} tokens`);
  }
  let parallel = policy.maxParallel;
  let context: LlamaContext | undefined;
  while (!context) {
    try {
      context = await model.createContext({
        contextSize: ctxSize * parallel,
        sequences: parallel,
        threads: options.threads,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (parallel > 1) parallel = Math.max(1, Math.floor(parallel / 2));
      else if (ctxSize > MIN_CTX) ctxSize = Math.max(MIN_CTX, Math.floor(ctxSize / 2));
      else throw error;
      options.log?.(`context did not fit (${reason}); trying parallel ${parallel}, ctx ${ctxSize}`);
    }
  }
  if (parallel < policy.maxParallel) notes.push(`parallel lowered to ${parallel}: not enough memory`);
  if (ctxSize < policy.ctxSize && notes.length === 0) notes.push(`ctx lowered to ${ctxSize}: not enough memory`);
  const created = context;
  const slots = Array.from({ length: parallel }, () => ({ sequence: created.getSequence(), busy: false, lastUsed: 0 }));
  return { context, slots, ctxSize, parallel, notes };
}

/**
 * Takes the free slot holding the longest prefix of `tokens`; ties go to the same conversation, then the least
 * recently used. `use` is the engine's running use counter (recorded as the slot's `lastUsed`).
 */
export function takeSlot(slots: Slot[], tokens: Token[], conversationKey: string | undefined, use: number): Slot {
  const rank = (slot: Slot) => [
    slot.sequence.compareContextTokens(tokens).firstDifferentIndex,
    conversationKey !== undefined && slot.conversationKey === conversationKey ? 1 : 0,
    -slot.lastUsed,
  ];
  let best: { slot: Slot; rank: number[] } | undefined;
  for (const slot of slots) {
    if (slot.busy) continue;
    const candidate = { slot, rank: rank(slot) };
    const index = best ? candidate.rank.findIndex((value, i) => value !== best?.rank[i]) : -1;
    if (!best || (index >= 0 && candidate.rank[index] > best.rank[index])) best = candidate;
  }
  if (!best) throw new Error("no free slot: the loop sent more jobs than slots");
  best.slot.busy = true;
  best.slot.lastUsed = use;
  return best.slot;
}

/** "Q4_K_M" from the GGUF's general.file_type. */
export function fileQuantization(model: LlamaModel): string | undefined {
  const fileType = model.fileInfo.metadata.general?.file_type;
  if (fileType === undefined) return undefined;
  return GgufFileType[fileType]?.replace(/^(MOSTLY|ALL)_/, "");
}
