/**
 * The worker's install plan (workers/gpu/install-plan.mjs) and GPU detection (gpu-detect.mjs): the decision that
 * a Linux x64 machine reporting an NVIDIA GPU gets the CUDA build, that AUXOT_CPU_ONLY keeps it out, and the other
 * platforms — tested on the decision, not on hardware this machine lacks. Also the CPU-fallback warning's wording
 * (workers/gpu/backend.ts) and the provisioning error when the model host cannot be reached.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectGpus, hasCudaRuntime, parseNvidiaSmi, pciDisplayVendors } from "../../workers/gpu/gpu-detect.mjs";
import { workerInstallPlan } from "../../workers/gpu/install-plan.mjs";
import { cpuFallbackWarning } from "../../workers/gpu/backend.ts";
import { provisionModel } from "../../workers/gpu/provision.ts";
import type { Policy } from "../../src/protocol/worker-protocol.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const H100 = { vendor: "nvidia" as const, name: "NVIDIA H100 80GB HBM3", memoryBytes: 81559 * 2 ** 20, driver: true };

Deno.test("Linux x64 with an NVIDIA GPU: the plan installs the CUDA build (and only it)", () => {
  const plan = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100], env: {} });
  assert.equal(plan.backend, "cuda");
  assert.ok(plan.packages.includes("@node-llama-cpp/linux-x64-cuda"));
  assert.ok(!plan.packages.includes("@node-llama-cpp/linux-x64-vulkan"));
  assert.deepEqual(plan.workspaces, ["@auxot/worker", "@auxot/llama-cuda"]);
  assert.deepEqual(plan.npmArgs, [
    "ci",
    "--omit=dev",
    "--workspace",
    "@auxot/worker",
    "--workspace",
    "@auxot/llama-cuda",
    "--include-workspace-root",
    "--no-audit",
    "--no-fund",
  ]);
  assert.match(plan.reason, /NVIDIA H100/);
});

Deno.test("NVIDIA GPU without the CUDA runtime libraries: still the CUDA build, with a warning naming them", () => {
  const plan = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100], cudaRuntime: false });
  assert.equal(plan.backend, "cuda");
  assert.match(plan.warning ?? "", /libcudart and libcublas/);
  assert.equal(
    workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100], cudaRuntime: true }).warning,
    undefined,
  );
  const ldconfig = "\tlibcublas.so.13 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcublas.so.13\n" +
    "\tlibcudart.so.13 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudart.so.13\n";
  assert.equal(hasCudaRuntime({ run: () => ldconfig }), true);
  assert.equal(hasCudaRuntime({ run: () => "", exists: () => false }), false);
});

Deno.test("AUXOT_CPU_ONLY keeps the CUDA build out, and says a GPU is being ignored", () => {
  for (const value of ["1", "true", "yes"]) {
    const plan = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100], env: { AUXOT_CPU_ONLY: value } });
    assert.equal(plan.backend, "cpu");
    assert.deepEqual(plan.packages, ["@node-llama-cpp/linux-x64"]);
    assert.ok(!plan.workspaces.includes("@auxot/llama-cuda"));
    assert.ok(!plan.npmArgs.includes("@auxot/llama-cuda"));
    assert.match(plan.warning ?? "", /GPU is present \(NVIDIA H100.*AUXOT_CPU_ONLY/);
  }
  // Unset or "0" is not the switch.
  assert.equal(
    workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100], env: { AUXOT_CPU_ONLY: "0" } }).backend,
    "cuda",
  );
});

Deno.test("the development install (npm test, .ci/run) keeps dev dependencies and follows the same switch", () => {
  const ci = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [], env: { AUXOT_CPU_ONLY: "1" }, dev: true });
  assert.deepEqual(ci.npmArgs, [
    "ci",
    "--workspace",
    "@auxot/worker",
    "--include-workspace-root",
    "--no-audit",
    "--no-fund",
  ]);
});

Deno.test("other machines: AMD/Intel → Vulkan, Apple silicon → Metal, Intel Mac and ARM Linux → CPU, Windows refused", () => {
  const amd = workerInstallPlan({
    platform: "linux",
    arch: "x64",
    gpus: [{ vendor: "amd", name: "AMD GPU", driver: false }],
  });
  assert.equal(amd.backend, "vulkan");
  assert.deepEqual(amd.workspaces, ["@auxot/worker", "@auxot/llama-vulkan"]);
  const none = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [] });
  assert.equal(none.backend, "cpu");
  assert.deepEqual(none.workspaces, ["@auxot/worker"]);
  const mac = workerInstallPlan({
    platform: "darwin",
    arch: "arm64",
    gpus: detectGpus({ platform: "darwin", arch: "arm64" }),
  });
  assert.equal(mac.backend, "metal");
  assert.deepEqual(mac.packages, ["@node-llama-cpp/mac-arm64-metal"]);
  assert.deepEqual(mac.workspaces, ["@auxot/worker"]);
  assert.equal(workerInstallPlan({ platform: "darwin", arch: "x64", gpus: [] }).backend, "cpu");
  assert.equal(
    workerInstallPlan({ platform: "linux", arch: "arm64", gpus: [] }).packages[0],
    "@node-llama-cpp/linux-arm64",
  );
  assert.throws(() => workerInstallPlan({ platform: "win32", arch: "x64", gpus: [H100] }), /WSL/);
});

Deno.test("the plan's workspaces and packages exist in package.json and the lockfile", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(join(ROOT, "package.json")));
  const lock = JSON.parse(await Deno.readTextFile(join(ROOT, "package-lock.json")));
  const workspaceNames = new Set<string>();
  for (const [path, entry] of Object.entries(lock.packages as Record<string, { name?: string }>)) {
    if (!path.startsWith("node_modules/") && path !== "" && entry.name) workspaceNames.add(entry.name);
  }
  const plan = workerInstallPlan({ platform: "linux", arch: "x64", gpus: [H100] });
  for (const w of plan.workspaces) assert.ok(workspaceNames.has(w), `${w} is a workspace in the lockfile`);
  assert.ok(manifest.workspaces.includes("packages/llama-cuda"));
  // The forwarder for each CUDA package is a workspace; the real build sits under its alias in the lockfile.
  for (const name of ["linux-x64-cuda", "linux-x64-cuda-ext"]) {
    assert.equal(lock.packages[`node_modules/@node-llama-cpp/${name}`].resolved, `vendor/llama-backend/${name}`);
    assert.equal(lock.packages[`node_modules/auxot-llama-${name}`].name, `@node-llama-cpp/${name}`);
    assert.match(lock.packages[`node_modules/auxot-llama-${name}`].integrity, /^sha512-/);
  }
  // macOS builds are in the lockfile (by version), so npm ci finds every optional package of node-llama-cpp.
  assert.equal(lock.packages["node_modules/@node-llama-cpp/mac-arm64-metal"].version, "3.22.1");
});

Deno.test("GPU detection: nvidia-smi output, PCI vendor ids, and nothing on a machine without either", async () => {
  assert.deepEqual(parseNvidiaSmi("NVIDIA H100 80GB HBM3, 81559\nNVIDIA L4, 23034\n").map((g) => g.name), [
    "NVIDIA H100 80GB HBM3",
    "NVIDIA L4",
  ]);
  assert.equal(parseNvidiaSmi("NVIDIA L4, 23034")[0].memoryBytes, 23034 * 2 ** 20);
  const drm = await mkdtemp(join(tmpdir(), "auxot-drm-"));
  try {
    for (const [card, vendor] of [["card0", "0x1af4"], ["card1", "0x10de"], ["card2", "0x1002"]]) {
      await mkdir(join(drm, card, "device"), { recursive: true });
      await writeFile(join(drm, card, "device", "vendor"), `${vendor}\n`);
    }
    assert.deepEqual(pciDisplayVendors(drm), ["nvidia", "amd"]);
    const noSmi = () => {
      throw new Error("ENOENT");
    };
    const gpus = detectGpus({ platform: "linux", arch: "x64", run: noSmi, drmRoot: drm });
    assert.deepEqual(gpus.map((g) => [g.vendor, g.driver]), [["nvidia", false], ["amd", false]]);
    const withSmi = detectGpus({ platform: "linux", arch: "x64", run: () => "NVIDIA L4, 23034\n", drmRoot: drm });
    assert.deepEqual(withSmi.map((g) => g.name), ["NVIDIA L4", "AMD GPU"]);
    // A PCI-only NVIDIA GPU still gets CUDA, with a warning about the driver.
    const plan = workerInstallPlan({ platform: "linux", arch: "x64", gpus });
    assert.equal(plan.backend, "cuda");
    assert.match(plan.warning ?? "", /nvidia-smi did not answer/);
  } finally {
    await rm(drm, { recursive: true, force: true });
  }
  assert.deepEqual(detectGpus({ platform: "linux", arch: "x64", run: () => "", drmRoot: "/nonexistent" }), []);
});

Deno.test("CPU fallback on a GPU machine: the warning says why and what to run", () => {
  const base = { cpuOnly: false, gpuBuildInstalled: true, platform: "linux" };
  assert.equal(cpuFallbackWarning([], base), undefined);
  assert.match(
    cpuFallbackWarning([H100], { ...base, gpuBuildInstalled: false })!,
    /not installed.*auxot-worker-install/,
  );
  assert.match(cpuFallbackWarning([H100], { ...base, gpuLayers: 0 })!, /--gpu-layers 0/);
  assert.match(cpuFallbackWarning([H100], { ...base, cpuOnly: true })!, /AUXOT_CPU_ONLY/);
  assert.match(cpuFallbackWarning([H100], base)!, /CUDA build is installed but did not load.*nvidia-smi/);
});

Deno.test("model host unreachable: one error naming the host and the fixes, after one attempt", async () => {
  let reads = 0;
  const policy = {
    version: 1,
    engine: "llama",
    model: {
      name: "Tiny",
      files: ["Q4_K_M", "Q8_0", "BF16"].map((q) => ({
        quantization: q,
        huggingFaceRepo: "someone/Tiny-GGUF",
        file: `t-${q}.gguf`,
      })),
    },
    ctxSize: 4096,
    maxParallel: 2,
  } as unknown as Policy;
  const logged: string[] = [];
  const error = await provisionModel(policy, {
    freeBytes: () => Promise.resolve(8e9),
    readHeader: () => {
      reads++;
      return Promise.reject(
        new TypeError("fetch failed", {
          cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
        }),
      );
    },
    download: () => Promise.reject(new Error("not reached")),
    hub: { endpoint: "https://huggingface.co" },
    log: (m) => logged.push(m),
  }).then(() => undefined, (err: Error) => err);
  assert.ok(error);
  assert.equal(reads, 1);
  assert.deepEqual(logged, []);
  assert.match(error.message, /Could not reach huggingface\.co/);
  assert.match(error.message, /ECONNREFUSED/);
  assert.match(error.message, /HF_ENDPOINT/);
  assert.match(error.message, /--model-path/);
});
