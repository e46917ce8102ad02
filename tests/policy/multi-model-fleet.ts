/**
 * A several-model fleet for tests: two tiny generated chat models of different size and vocabulary ("tiny-big",
 * "tiny-small"), one tiny embedding model, and three real GPU worker processes — A serves tiny-big, B serves
 * tiny-small, C serves all three. The router's policy also names "tiny-none", which no worker serves.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { type GpuWorkerProcess, spawnGpuWorker } from "../helpers/gpu-worker.ts";
import { eventually, type RouterTarget } from "../helpers/router.ts";

export interface ModelFiles {
  dir: string;
  big: string;
  small: string;
  embed: string;
  none: string;
}

export async function writeModels(): Promise<ModelFiles> {
  const dir = await mkdtemp(join(tmpdir(), "auxot-multi-model-"));
  const files = {
    dir,
    big: join(dir, "big.gguf"),
    small: join(dir, "small.gguf"),
    embed: join(dir, "embed.gguf"),
    none: join(dir, "none.gguf"),
  };
  await writeTinyGguf(files.big, { name: "tiny-big", seed: 1 });
  // Small, with its own vocabulary, and ending its turns by itself (Claude Code asks for up to 64,000 tokens).
  await writeTinyGguf(files.small, {
    name: "tiny-small",
    seed: 2,
    vocabExtra: 100,
    nEmbd: 32,
    heads: 2,
    layers: 1,
    eosBias: 1,
    ctx: 131_072,
  });
  await writeTinyGguf(files.embed, { name: "tiny-embed", seed: 3, nEmbd: 48 });
  return files;
}

/** The router's variables for the fleet. */
export const MULTI_MODEL_ENV = {
  AUXOT_MODEL: "custom:tiny-big",
  AUXOT_CTX_SIZE: "1024",
  AUXOT_MAX_PARALLEL: "2",
  AUXOT_MODELS: "custom:tiny-small ctx=131072 parallel=1, custom:tiny-none",
  AUXOT_EMBEDDING_MODELS: "custom:tiny-embed ctx=512 parallel=2 min-dimensions=8",
  AUXOT_MODEL_ALIASES: "claude-haiku-*=tiny-small, gpt-*-mini=tiny-small",
};

export interface Fleet {
  a: GpuWorkerProcess;
  b: GpuWorkerProcess;
  c: GpuWorkerProcess;
  /** Which worker ran a job (by the job id the router returns as x-request-id / request-id). */
  ranOn(jobId: string): ("a" | "b" | "c")[];
  stop(): Promise<void>;
}

export async function startFleet(router: RouterTarget, files: ModelFiles): Promise<Fleet> {
  const a = spawnGpuWorker(router, `tiny-big=${files.big}`, ["--models", "tiny-big", "--name", "box-a"]);
  const b = spawnGpuWorker(router, `tiny-small=${files.small}`, ["--models", "tiny-small", "--name", "box-b"]);
  const c = spawnGpuWorker(router, `tiny-big=${files.big}`, [
    "--model-path",
    `custom:tiny-small=${files.small}`,
    "--model-path",
    `tiny-embed=${files.embed}`,
    "--name",
    "box-c",
  ]);
  const fleet: Fleet = {
    a,
    b,
    c,
    ranOn: (jobId) =>
      (["a", "b", "c"] as const).filter((name) =>
        fleet[name].stderr.some((line) => line.includes('"job started"') && line.includes(jobId))
      ),
    stop: async () => {
      await Promise.all([a.stop(), b.stop(), c.stop()]);
    },
  };
  try {
    await eventually(
      async () => (await (await fetch(`${router.url}/health`)).json()).workers.ready === 3,
      120_000,
      "three workers to load their models",
    );
  } catch (err) {
    await fleet.stop();
    throw new Error(`${(err as Error).message}\n${[...a.stderr, ...b.stderr, ...c.stderr].slice(-30).join("\n")}`);
  }
  return fleet;
}

export async function removeModels(files: ModelFiles): Promise<void> {
  await rm(files.dir, { recursive: true, force: true });
}
