/**
 * Embeddings per second on a tiny generated embedding model: through the router (embedded store, Deno) and a GPU
 * worker process running node-llama-cpp (1 thread), vs node-llama-cpp called directly in this process with the same
 * model, context and inputs. Rounds alternate (direct, router, direct, …) and medians are reported, since the machine
 * is shared. Batches of 64 inputs per request, as a RAG indexer sends them; the router figure also at 4 concurrent
 * requests.
 *
 *   deno run -A bench/embeddings.ts [--rounds 3] [--inputs 256]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { writeTinyGguf } from "../tests/fixtures/tiny-gguf.ts";
import { stopAll } from "./lib/process.ts";
import { median, num, ratio } from "./lib/stats.ts";
import { benchTempDir, makeKeys, startDenoRouter, startGpuWorker, waitForWorkers } from "./stack.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "3" }, inputs: { type: "string", default: "256" } },
});
const rounds = Number(values.rounds), total = Number(values.inputs);
const BATCH = 64;
const inputs = Array.from({ length: total }, (_, i) => `document ${i}: the quick brown fox jumps over the lazy dog`);

try {
  const dir = await benchTempDir();
  const modelPath = join(dir, "embed.gguf");
  await writeTinyGguf(modelPath, { name: "bench-embed", seed: 3 });

  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createEmbeddingContext({ contextSize: 512, batchSize: 512, threads: 1 });
  const direct = async () => {
    const started = performance.now();
    for (const input of inputs) await context.getEmbeddingFor(input);
    return total / ((performance.now() - started) / 1000);
  };

  const keys = await makeKeys();
  const router = await startDenoRouter({
    name: "router",
    keys,
    env: { AUXOT_EMBEDDING_MODELS: "custom:bench-embed ctx=512 parallel=1" },
  });
  const worker = startGpuWorker("worker", router.url, keys, [
    "--models",
    "bench-embed",
    "--model-path",
    `bench-embed=${modelPath}`,
    "--threads",
    "1",
  ]);
  await waitForWorkers(router.url, worker, 60_000);
  const post = async (batch: string[]) => {
    const response = await fetch(`${router.url}/v1/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${keys.api}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "bench-embed", input: batch, encoding_format: "base64" }),
    });
    const body = await response.json();
    if (!response.ok || body.data?.length !== batch.length) throw new Error(JSON.stringify(body).slice(0, 300));
  };
  const batches: string[][] = [];
  for (let i = 0; i < total; i += BATCH) batches.push(inputs.slice(i, i + BATCH));
  const viaRouter = async (concurrency: number) => {
    const started = performance.now();
    const queue = [...batches];
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let batch = queue.shift(); batch; batch = queue.shift()) await post(batch);
    }));
    return total / ((performance.now() - started) / 1000);
  };

  await direct(); // warm-up
  await viaRouter(1);
  const figures = { direct: [] as number[], router: [] as number[], router4: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    figures.direct.push(await direct());
    figures.router.push(await viaRouter(1));
    figures.router4.push(await viaRouter(4));
  }
  const d = median(figures.direct), r = median(figures.router), r4 = median(figures.router4);
  console.log(`Embeddings/s, tiny model (n_embd 64, 2 layers), ${total} inputs of ~14 tokens, batches of ${BATCH}:`);
  console.log(`  node-llama-cpp directly:           ${num(d)} /s`);
  console.log(`  through the router, 1 request:     ${num(r)} /s (${ratio(r / d)} of direct)`);
  console.log(`  through the router, 4 concurrent:  ${num(r4)} /s (${ratio(r4 / d)} of direct)`);
  console.log(
    `  rounds: direct ${figures.direct.map((v) => num(v)).join(", ")}; router ${
      figures.router.map((v) => num(v)).join(", ")
    }`,
  );
  await context.dispose();
  await model.dispose();
  await llama.dispose();
} finally {
  await stopAll();
}
