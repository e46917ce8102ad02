/**
 * hash-wasm's Argon2id under real workerd, through the precompiled-WASM shim (src/platform/hash-wasm-workers.ts).
 *
 * Builds tests/workers/argon2-probe-entry.ts with scripts/build-workers.ts and runs it twice: with the shim (hashes
 * cross-verify with Deno's hash-wasm both ways, wrong keys fail) and without it (workerd must refuse to compile,
 * which shows these tests would catch a broken shim). Also checks that the committed .wasm files still match the
 * installed hash-wasm, and that the shim rejects modules that are not the ones its manifest describes.
 */
import assert from "node:assert/strict";
import { argon2id, argon2Verify } from "hash-wasm";
import { buildWorkers } from "../../scripts/build-workers.ts";
import { installPrecompiledWasm } from "../../src/platform/hash-wasm-workers.ts";
import { startWorkerd, type WorkerdInstance } from "../fixtures/workerd.ts";

const probeEntry = new URL("./argon2-probe-entry.ts", import.meta.url).pathname;
const wasmDir = new URL("../../src/platform/wasm/", import.meta.url);

async function postJson(instance: WorkerdInstance, path: string, body: unknown): Promise<[number, unknown]> {
  const response = await fetch(`${instance.url}${path}`, { method: "POST", body: JSON.stringify(body) });
  return [response.status, await response.json()];
}

function denoHash(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return argon2id({
    password,
    salt,
    parallelism: 1,
    iterations: 2,
    memorySize: 19456,
    hashLength: 32,
    outputType: "encoded",
  });
}

Deno.test("committed hash-wasm WASM files match the installed package", async () => {
  const script = new URL("../../scripts/extract-wasm.ts", import.meta.url).pathname;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", script, "--check"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  assert.match(text, /argon2\.wasm \d+ bytes sha256 [0-9a-f]{64}/);
  assert.match(text, /up to date/);
});

Deno.test("installPrecompiledWasm refuses modules its manifest does not describe", async () => {
  const argon2 = await WebAssembly.compile(await Deno.readFile(new URL("argon2.wasm", wasmDir)));
  const blake2b = await WebAssembly.compile(await Deno.readFile(new URL("blake2b.wasm", wasmDir)));
  // Swapped names: caught before the global compile is touched, so this Deno process stays unpatched.
  assert.throws(() => installPrecompiledWasm({ argon2: blake2b, blake2b: argon2 }), /does not have the exports/);
});

Deno.test("hash-wasm Argon2id under workerd", async (t) => {
  const buildDir = await Deno.makeTempDir({ prefix: "auxot-argon2-probe-" });
  const instances: WorkerdInstance[] = [];
  try {
    const build = await buildWorkers({ entry: probeEntry, outdir: buildDir });
    assert.deepEqual(build.wasmModules.toSorted(), ["argon2.wasm", "blake2b.wasm"]);
    const withShim = await startWorkerd({ bundleDir: buildDir, bindings: {} });
    instances.push(withShim);
    const withoutShim = await startWorkerd({ bundleDir: buildDir, bindings: { PRECOMPILED_WASM: "off" } });
    instances.push(withoutShim);

    await t.step("a hash made under Deno verifies in workerd; a wrong key does not", async () => {
      const hash = await denoHash("sk-right-key");
      assert.deepEqual(await postJson(withShim, "/verify", { password: "sk-right-key", hash }), [200, { valid: true }]);
      assert.deepEqual(await postJson(withShim, "/verify", { password: "sk-wrong-key", hash }), [200, {
        valid: false,
      }]);
    });

    await t.step("a hash made in workerd verifies under Deno; a wrong key does not", async () => {
      const [status, body] = await postJson(withShim, "/hash", { password: "admin-key" });
      assert.equal(status, 200, JSON.stringify(body));
      const hash = (body as { hash: string }).hash;
      assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      assert.equal(await argon2Verify({ password: "admin-key", hash }), true);
      assert.equal(await argon2Verify({ password: "admin-kez", hash }), false);
    });

    await t.step("without the shim workerd refuses to compile hash-wasm's WASM", async () => {
      const hash = await denoHash("sk-right-key");
      const [status, body] = await postJson(withoutShim, "/verify", { password: "sk-right-key", hash });
      assert.equal(status, 500);
      assert.match((body as { error: string }).error, /Wasm code generation disallowed by embedder/);
    });
  } finally {
    for (const instance of instances) await instance.stop();
    await Deno.remove(buildDir, { recursive: true });
  }
});
