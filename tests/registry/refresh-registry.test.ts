/**
 * scripts/refresh-registry.ts against a local imitation of the Hugging Face API (tests/gpu/fake-hub.ts): the
 * paginated recursive tree listing with LFS sizes, gated repositories, and the script run as a command with
 * --hf-endpoint and HF_TOKEN.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { refreshRegistry } from "../../scripts/refresh-registry.ts";
import { Registry, serializeRegistry } from "../../src/registry/schema.ts";
import { type FakeHub, type HubFile, startFakeHub } from "../gpu/fake-hub.ts";

const SHA = "ab".repeat(32);
const GB = 1e9;
const file = (path: string, size: number): HubFile => ({ path, size, sha256: SHA });

const REPO_A = "unsloth/Alpha-GGUF";
const REPO_B = "gated/Beta-GGUF";

function startHub(): Promise<FakeHub> {
  return startFakeHub({
    repos: {
      [REPO_A]: [
        file("Alpha-Q4_K_S.gguf", 4.6 * GB),
        file("BF16/Alpha-BF16-00001-of-00003.gguf", 5 * GB),
        file("BF16/Alpha-BF16-00002-of-00003.gguf", 5 * GB),
        file("BF16/Alpha-BF16-00003-of-00003.gguf", 6.25 * GB),
        file("Q8_0/Alpha-Q8_0.gguf", 8.54 * GB), // moved from the repository's root
        file("UD-Q4_K_XL/Alpha-UD-Q4_K_XL.gguf", 5.01 * GB), // new
        file("Q2_K/Alpha-Q2_K-00001-of-00002.gguf", 2 * GB), // incomplete shard set
        file("mmproj-BF16.gguf", 0.9 * GB),
        file("mmproj-F16.gguf", 0.85 * GB),
        { path: "README.md", data: new TextEncoder().encode("# Alpha\n"), lfs: false },
        { path: "config.json", data: new TextEncoder().encode("{}"), lfs: false },
      ],
      [REPO_B]: [file("Beta-Q4_K_M.gguf", 1.23 * GB)],
    },
    gated: { token: "hf_refresh_secret", repos: [REPO_B] },
    pageSize: 3,
  });
}

const registry: Registry = {
  format: 1,
  source: "test",
  models: [
    {
      name: "Alpha",
      family: "Dense",
      parameters: "8B",
      defaultContext: 32768,
      maxContext: 131072,
      capabilities: ["chat", "vision"],
      quantizations: [
        { name: "Q3_K_S", repo: REPO_A, file: "Alpha-Q3_K_S.gguf", sizeGb: 3.5 },
        { name: "Q4_K_S", repo: REPO_A, file: "Alpha-Q4_K_S.gguf", sizeGb: 4.5 },
        { name: "Q8_0", repo: REPO_A, file: "Alpha-Q8_0.gguf", sizeGb: 8 },
        {
          name: "BF16",
          aliases: ["F16"],
          repo: REPO_A,
          file: "BF16/Alpha-BF16-00001-of-00003.gguf",
          shards: 3,
          sizeGb: 16,
        },
      ],
    },
    {
      name: "Beta",
      family: "Dense",
      parameters: "1B",
      defaultContext: 8192,
      maxContext: 8192,
      capabilities: ["chat"],
      quantizations: [{ name: "Q4_K_M", repo: REPO_B, file: "Beta-Q4_K_M.gguf", sizeGb: 1 }],
    },
  ],
};

Deno.test("refresh updates sizes, shards, moved files, removals, additions and the projector", async () => {
  const hub = await startHub();
  try {
    const result = await refreshRegistry(registry, { endpoint: hub.endpoint, source: "refreshed" });
    const alpha = result.registry.models.find((m) => m.name === "Alpha")!;
    const byName = new Map(alpha.quantizations.map((q) => [q.name, q]));
    assert.deepEqual([...byName.keys()].sort(), ["BF16", "Q4_K_S", "Q8_0", "UD-Q4_K_XL"]);
    assert.deepEqual(byName.get("Q4_K_S"), {
      name: "Q4_K_S",
      repo: REPO_A,
      file: "Alpha-Q4_K_S.gguf",
      sizeGb: 4.6,
      mmproj: "mmproj-F16.gguf",
      // The hub's LFS oids become the download pins of the model file and its projector.
      sha256: { "Alpha-Q4_K_S.gguf": "ab".repeat(32), "mmproj-F16.gguf": "ab".repeat(32) },
    });
    assert.equal(Object.keys(byName.get("BF16")?.sha256 ?? {}).length, 4, "every shard pinned, and the projector");
    assert.equal(byName.get("Q8_0")?.file, "Q8_0/Alpha-Q8_0.gguf");
    assert.equal(byName.get("Q8_0")?.sizeGb, 8.54);
    assert.deepEqual(
      [byName.get("BF16")?.sizeGb, byName.get("BF16")?.shards, byName.get("BF16")?.aliases],
      [16.25, 3, ["F16"]],
    );
    assert.equal(byName.get("UD-Q4_K_XL")?.file, "UD-Q4_K_XL/Alpha-UD-Q4_K_XL.gguf");
    assert.ok(result.changes.includes("- Alpha Q3_K_S: Alpha-Q3_K_S.gguf is no longer in unsloth/Alpha-GGUF"));
    assert.ok(result.changes.includes("~ Alpha Q8_0: file Alpha-Q8_0.gguf → Q8_0/Alpha-Q8_0.gguf"));
    assert.ok(result.changes.includes("+ Alpha UD-Q4_K_XL: UD-Q4_K_XL/Alpha-UD-Q4_K_XL.gguf (5.01 GB)"));
    assert.deepEqual(result.warnings, [
      "Alpha (unsloth/Alpha-GGUF): Q2_K/Alpha-Q2_K-00001-of-00002.gguf has 1 of 2 shards; skipped",
    ]);
    // The gated repository could not be listed without a token and was left alone.
    assert.equal(result.failures.length, 1);
    assert.match(
      result.failures[0],
      /^gated\/Beta-GGUF: HTTP 401 GatedRepo listing files \(gated or private: set HF_TOKEN\)$/,
    );
    assert.deepEqual(result.registry.models.find((m) => m.name === "Beta"), registry.models[1]);
    assert.equal(result.registry.source, "refreshed");
    // The listing was paginated (3 entries a page) and every page was read.
    const pages = hub.requests.filter((r) => r.path.startsWith(`/api/models/${REPO_A}/`));
    assert.ok(pages.length >= 5, `${pages.length} pages`);
    // Running again changes nothing.
    const again = await refreshRegistry(result.registry, { endpoint: hub.endpoint, models: ["alpha"] });
    assert.deepEqual(again.changes, []);
    assert.equal(serializeRegistry(again.registry), serializeRegistry(result.registry));
  } finally {
    await hub.close();
  }
});

Deno.test("refresh-registry as a command: --hf-endpoint, HF_TOKEN, --model, --no-add", async () => {
  const hub = await startHub();
  const dir = await mkdtemp(join(tmpdir(), "auxot-refresh-"));
  try {
    const path = join(dir, "models.json");
    await writeFile(path, serializeRegistry(registry));
    const script = new URL("../../scripts/refresh-registry.ts", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--hf-endpoint", hub.endpoint, "--registry", path, "--model", "Beta", "--no-add"],
      env: { HF_TOKEN: "hf_refresh_secret", HF_ENDPOINT: "http://127.0.0.1:9" },
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.match(stdout, /~ Beta Q4_K_M: size 1 → 1\.23 GB/);
    assert.match(stdout, /1 change\(s\); 0 repositories failed/);
    assert.ok(!stdout.includes("hf_refresh_secret") && !stderr.includes("hf_refresh_secret"));
    const written = Registry.parse(JSON.parse(await readFile(path, "utf8")));
    assert.equal(written.models[1].quantizations[0].sizeGb, 1.23);
    assert.deepEqual(written.models[0], registry.models[0]); // not selected: untouched
    assert.match(written.source, /^Hugging Face 127\.0\.0\.1:\d+, refreshed \d{4}-\d{2}-\d{2}$/);
    assert.ok(hub.requests.filter((r) => r.server === "hub").every((r) => r.authorized));
  } finally {
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});
