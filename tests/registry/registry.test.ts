/**
 * The embedded registry: lookup, suggestions, policy blocks, the table, the file-name helpers, and that
 * models.json is exactly what scripts/build-registry.ts writes (sorted, stable layout).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  chatRegistry,
  DEFAULT_MODEL,
  embeddingRegistry,
  findModel,
  findQuantization,
  formatModelTable,
  listModels,
  quantizationsOf,
  RegistryError,
  resolvePolicyModel,
  suggestModels,
} from "../../src/registry/registry.ts";
import { parseShardName, quantizationFromFileName, shardFileNames } from "../../src/registry/model-files.ts";
import { serializeRegistry } from "../../src/registry/schema.ts";
import { buildRegistry } from "../../scripts/build-registry.ts";
import { Policy } from "../../src/protocol/worker-protocol.ts";

Deno.test("the default model is in the registry with several quantizations", () => {
  const model = findModel(DEFAULT_MODEL);
  assert.ok(model, `${DEFAULT_MODEL} missing from models.json`);
  assert.equal(model.name, "Qwen3.5-35B-A3B");
  assert.equal(model.family, "MoE");
  assert.deepEqual(model.capabilities, ["chat", "vision"]);
  const names = quantizationsOf(model).map((q) => q.name);
  for (const expected of ["Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "Q8_0", "BF16"]) assert.ok(names.includes(expected));
  const q4 = findQuantization(model, "q4_k_s");
  assert.deepEqual(q4, {
    name: "Q4_K_S",
    repo: "unsloth/Qwen3.5-35B-A3B-GGUF",
    file: "Qwen3.5-35B-A3B-Q4_K_S.gguf",
    sizeGb: 17.5,
    mmproj: "mmproj-F16.gguf",
  });
});

Deno.test("lookup is case-insensitive and exact", () => {
  assert.equal(findModel("qwen3.5-35b-a3b")?.name, "Qwen3.5-35B-A3B");
  assert.equal(findModel("  GPT-OSS-20B ")?.name, "gpt-oss-20b");
  assert.equal(findModel("Qwen3.5-35B"), undefined);
  assert.equal(findModel(""), undefined);
});

Deno.test("catalogue labels that differ from the file's quantization stay usable as aliases", () => {
  const model = findModel("Qwen3.5-35B-A3B");
  assert.ok(model);
  const bf16 = findQuantization(model, "F16");
  assert.equal(bf16?.name, "BF16");
  assert.equal(bf16?.shards, 2);
  assert.match(bf16?.file ?? "", /-00001-of-00002\.gguf$/);
  assert.equal(findQuantization(model, "Q8_K")?.name, "UD-Q8_K_XL");
  assert.equal(findQuantization(model, "IQ1_S"), undefined);
});

Deno.test("suggestions for typos, partial names and nonsense", () => {
  assert.deepEqual(suggestModels("Qwen3.5-35B-A3", 1), ["Qwen3.5-35B-A3B"]);
  assert.equal(suggestModels("qwen3.5-35b-a3c")[0], "Qwen3.5-35B-A3B");
  assert.ok(suggestModels("gpt-oss").every((name) => name.startsWith("gpt-oss")));
  assert.equal(suggestModels("gpt-oss").length, 3);
  assert.equal(suggestModels("gpt-oss", 10).length, 4);
  assert.deepEqual(suggestModels("zzzzzzzzzzzzzzzzzz"), []);
});

Deno.test("resolvePolicyModel gives the policy's model block", () => {
  const block = resolvePolicyModel("qwen3.5-35b-a3b");
  assert.equal(block.name, "Qwen3.5-35B-A3B");
  assert.equal(block.quantization, undefined);
  assert.equal(block.files?.length, quantizationsOf(findModel(DEFAULT_MODEL)!).length);
  assert.deepEqual(block.files?.find((f) => f.quantization === "Q8_0"), {
    quantization: "Q8_0",
    huggingFaceRepo: "unsloth/Qwen3.5-35B-A3B-GGUF",
    file: "Qwen3.5-35B-A3B-Q8_0.gguf",
    sizeGb: 35,
    mmproj: "mmproj-F16.gguf",
  });
  const withQuant = resolvePolicyModel("Qwen3.5-35B-A3B", "q6_k");
  assert.equal(withQuant.quantization, "Q6_K");
  // The block must pass the protocol's own schema unchanged.
  const policy = Policy.parse({ version: "v1", engine: "llama", model: withQuant, ctxSize: 131072, maxParallel: 2 });
  assert.deepEqual(policy.model, withQuant);
});

Deno.test("unknown models and quantizations fail with suggestions", () => {
  assert.throws(() => resolvePolicyModel("Qwen3.5-35B-A3"), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, "unknown_model");
    assert.equal(err.suggestions[0], "Qwen3.5-35B-A3B");
    assert.match(err.message, /Did you mean "Qwen3.5-35B-A3B"/);
    assert.match(err.message, /custom:/);
    return true;
  });
  assert.throws(() => resolvePolicyModel("Qwen3.5-35B-A3B", "Q2_K"), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, "unknown_quantization");
    assert.ok(err.suggestions.includes("Q4_K_S"));
    assert.match(err.message, /no quantization "Q2_K"\. Available: Q3_K_S, /);
    return true;
  });
});

Deno.test("custom: models need no registry entry", () => {
  assert.deepEqual(resolvePolicyModel("custom:my-finetune"), { name: "custom:my-finetune" });
  assert.deepEqual(resolvePolicyModel("custom:my-finetune", "Q4_K_M"), {
    name: "custom:my-finetune",
    quantization: "Q4_K_M",
  });
  assert.throws(() => resolvePolicyModel("custom:"), RegistryError);
});

Deno.test("the model table lists name, family, parameters, context and sized quantizations", () => {
  const table = formatModelTable([findModel(DEFAULT_MODEL)!, findModel("gpt-oss-20b")!]);
  const lines = table.trimEnd().split("\n");
  assert.equal(lines.length, 3);
  assert.match(lines[0], /^MODEL\s+FAMILY\s+PARAMS\s+CONTEXT\s+CAPABILITIES\s+QUANTIZATIONS \(size\)$/);
  assert.match(lines[1], /^Qwen3\.5-35B-A3B\s+MoE\s+35B\s+32K\/256K\s+chat,vision\s+Q3_K_S 11G, Q4_K_S 17\.5G, /);
  assert.match(lines[1], /BF16 70G$/);
  assert.match(lines[2], /^gpt-oss-20b\s+/);
  // Columns line up: every row's family starts where the header's does.
  const familyColumn = lines[0].indexOf("FAMILY");
  assert.equal(lines[1].indexOf("MoE"), familyColumn);
});

Deno.test("models.json is sorted, valid and in the build script's exact layout", async () => {
  const text = await readFile(new URL("../../src/registry/models.json", import.meta.url), "utf8");
  assert.equal(serializeRegistry(chatRegistry), text);
  const embeddingText = await readFile(new URL("../../src/registry/embedding-models.json", import.meta.url), "utf8");
  assert.equal(serializeRegistry(embeddingRegistry), embeddingText);
  const names = listModels().map((m) => m.name.toLowerCase());
  assert.deepEqual(names, [...names].sort());
  assert.equal(listModels().length, 106 + 2);
  for (const model of embeddingRegistry.models) {
    assert.deepEqual(model.capabilities, ["embedding"], model.name);
    assert.ok(model.embedding && model.embedding.dimensions >= (model.embedding.minDimensions ?? 0), model.name);
  }
  for (const model of listModels()) {
    const sizes = model.quantizations.map((q) => q.sizeGb);
    assert.deepEqual(sizes, [...sizes].sort((a, b) => a - b), model.name);
    for (const q of model.quantizations) {
      assert.equal(quantizationFromFileName(q.file), q.name, q.file);
      assert.equal(parseShardName(q.file)?.count, q.shards, q.file);
    }
  }
});

Deno.test("file-name helpers: shards and quantizations", () => {
  assert.deepEqual(parseShardName("BF16/Kimi-K2.5-BF16-00003-of-00046.gguf"), { index: 3, count: 46 });
  assert.equal(parseShardName("Qwen3.5-35B-A3B-Q4_K_S.gguf"), undefined);
  assert.deepEqual(shardFileNames("Q4/M-Q4_K_M-00001-of-00003.gguf"), [
    "Q4/M-Q4_K_M-00001-of-00003.gguf",
    "Q4/M-Q4_K_M-00002-of-00003.gguf",
    "Q4/M-Q4_K_M-00003-of-00003.gguf",
  ]);
  assert.deepEqual(shardFileNames("single-Q8_0.gguf"), ["single-Q8_0.gguf"]);
  assert.equal(quantizationFromFileName("UD-Q8_K_XL/Kimi-K2.5-UD-Q8_K_XL-00001-of-00025.gguf"), "UD-Q8_K_XL");
  assert.equal(quantizationFromFileName("DeepSeek-R1-Q8_0/DeepSeek-R1.Q8_0-00001-of-00015.gguf"), "Q8_0");
  assert.equal(quantizationFromFileName("gemma-3-4b-it-qat-IQ4_XS.gguf"), "IQ4_XS");
  assert.equal(quantizationFromFileName("gpt-oss-20b-mxfp4.gguf"), "MXFP4");
  assert.equal(quantizationFromFileName("model.gguf"), undefined);
});

Deno.test("build-registry groups a catalogue deterministically, whatever its order", () => {
  const entry = (quantization: string, file: string, gb: number) => ({
    id: `m-${quantization}`,
    model_name: "Tiny-Model",
    huggingface_id: "someone/Tiny-Model-GGUF",
    quantization,
    family: "Dense",
    parameters: "1B",
    default_context_size: 8192,
    max_context_size: 32768,
    vram_requirements_gb: gb,
    capabilities: ["vision", "chat"],
    file_name: file,
    mmproj_file_name: "mmproj-F16.gguf",
    formats: [],
  });
  const entries = [
    entry("Q8_0", "Tiny-Model-Q8_0.gguf", 1.1),
    entry("F16", "BF16/Tiny-Model-BF16-00001-of-00002.gguf", 2),
    entry("Q4_K_S", "Tiny-Model-Q4_K_S.gguf", 0.6),
  ];
  const catalogue = (models: typeof entries) => ({ version: "9", generated_at: "2026-01-01T00:00:00Z", models });
  const a = serializeRegistry(buildRegistry(catalogue(entries)));
  const b = serializeRegistry(buildRegistry(catalogue([...entries].reverse())));
  assert.equal(a, b);
  assert.equal(
    a,
    `{
  "format": 1,
  "source": "gguf-model-catalog 9 (2026-01-01T00:00:00Z)",
  "models": [
    {
      "name": "Tiny-Model",
      "family": "Dense",
      "parameters": "1B",
      "defaultContext": 8192,
      "maxContext": 32768,
      "capabilities": ["chat","vision"],
      "quantizations": [
        {"name":"Q4_K_S","repo":"someone/Tiny-Model-GGUF","file":"Tiny-Model-Q4_K_S.gguf","sizeGb":0.6,"mmproj":"mmproj-F16.gguf"},
        {"name":"Q8_0","repo":"someone/Tiny-Model-GGUF","file":"Tiny-Model-Q8_0.gguf","sizeGb":1.1,"mmproj":"mmproj-F16.gguf"},
        {"name":"BF16","aliases":["F16"],"repo":"someone/Tiny-Model-GGUF","file":"BF16/Tiny-Model-BF16-00001-of-00002.gguf","shards":2,"sizeGb":2,"mmproj":"mmproj-F16.gguf"}
      ]
    }
  ]
}
`,
  );
});

Deno.test("deno task models: table, filter and --json", async () => {
  const run = async (...args: string[]) => {
    const script = new URL("../../scripts/models.ts", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), { args: ["run", "--allow-read", script, ...args] }).output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  };
  const table = await run("qwen3.5-35b");
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^MODEL .*\nQwen3\.5-35B-A3B\s+MoE/);
  const json = await run("Qwen3.5-35B-A3B", "--json");
  assert.equal(json.code, 0, json.stderr);
  const models = JSON.parse(json.stdout) as Array<{ name: string }>;
  assert.deepEqual(models.map((m) => m.name), ["Qwen3.5-35B-A3B"]);
  const none = await run("qwen3.5-35b-a3c");
  assert.equal(none.code, 1);
  assert.match(none.stderr, /No model matches "qwen3.5-35b-a3c"\. Did you mean: Qwen3.5-35B-A3B/);
});
