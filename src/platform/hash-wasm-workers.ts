/**
 * hash-wasm on Cloudflare Workers: hands hash-wasm precompiled WebAssembly modules instead of letting it compile.
 *
 * hash-wasm embeds its WASM as base64 and, on first use of a function, calls `WebAssembly.compile(bytes)`; Workers
 * forbid compiling at run time ("Wasm code generation disallowed by embedder"). The Workers entry imports the same
 * bytes, extracted by scripts/extract-wasm.ts, as `.wasm` modules (compiled by the platform at upload) and passes
 * them to `installPrecompiledWasm` before anything hashes. From then on a `WebAssembly.compile` call whose bytes have
 * the sha256 recorded in ./wasm/manifest.ts resolves to the matching precompiled module; every other call goes to the
 * original `WebAssembly.compile` unchanged. `compile` is the only hook needed: hash-wasm then calls
 * `WebAssembly.instantiate(module)`, which Workers allow. Deno and Node compile the WASM themselves and need none of
 * this.
 */
import { PRECOMPILED_WASM } from "./wasm/manifest.ts";

type PrecompiledName = keyof typeof PRECOMPILED_WASM;

/** The precompiled modules of `./wasm/hash-wasm-modules.js`, by hash-wasm's name for them. */
export type PrecompiledHashWasmModules = Record<PrecompiledName, WebAssembly.Module>;

interface PrecompiledEntry {
  name: PrecompiledName;
  sha256: string;
  byteLength: number;
  module: WebAssembly.Module;
}

type Compile = typeof WebAssembly.compile;

/** Set once the global is wrapped; re-installing only swaps `precompiledEntries`. */
let originalCompile: Compile | undefined;
let precompiledEntries: PrecompiledEntry[] = [];

/**
 * Makes hash-wasm's compile step resolve to `modules` (matched by the sha256 of the bytes it asks to compile).
 * Call it once, at module scope of the Workers entry, before the first hash: hash-wasm caches a failed compile for the
 * life of the isolate. Throws when a module is not the one the manifest describes (stale extraction or swapped names).
 */
export function installPrecompiledWasm(modules: PrecompiledHashWasmModules): void {
  precompiledEntries = (Object.keys(PRECOMPILED_WASM) as PrecompiledName[]).map((name) =>
    checkedEntry(name, modules[name])
  );
  if (originalCompile) return;
  const compile: Compile = WebAssembly.compile;
  originalCompile = compile;
  Object.defineProperty(WebAssembly, "compile", {
    value: compilePrecompiledFirst,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

function checkedEntry(name: PrecompiledName, module: WebAssembly.Module | undefined): PrecompiledEntry {
  if (!(module instanceof WebAssembly.Module)) {
    throw new TypeError(`installPrecompiledWasm: "${name}" is not a WebAssembly.Module (import the .wasm as a module)`);
  }
  const expected = PRECOMPILED_WASM[name];
  const actualExports = WebAssembly.Module.exports(module).map((entry) => entry.name).join(",");
  if (actualExports !== expected.exports.join(",")) {
    throw new Error(
      `installPrecompiledWasm: "${name}" does not have the exports recorded in src/platform/wasm/manifest.ts; ` +
        "re-run scripts/extract-wasm.ts and rebuild",
    );
  }
  return { name, sha256: expected.sha256, byteLength: expected.byteLength, module };
}

async function compilePrecompiledFirst(...args: Parameters<Compile>): Promise<WebAssembly.Module> {
  const compile = originalCompile;
  if (!compile) throw new Error("hash-wasm-workers: compile hook called before installation");
  const bytes = viewOf(args[0]);
  const candidates = bytes ? precompiledEntries.filter((entry) => entry.byteLength === bytes.byteLength) : [];
  if (bytes && candidates.length > 0) {
    const sha256 = await sha256Hex(bytes);
    const match = candidates.find((entry) => entry.sha256 === sha256);
    if (match) return match.module;
  }
  try {
    return await compile(...args);
  } catch (error) {
    // A hash-wasm upgrade without re-extraction lands here on Workers; say so instead of only "disallowed".
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${message} (no precompiled module matches these ${bytes?.byteLength ?? "?"} bytes; ` +
        "after upgrading hash-wasm re-run scripts/extract-wasm.ts and rebuild)",
      { cause: error },
    );
  }
}

/** The bytes of a `BufferSource`, or undefined for anything this hook should not read (shared memory, non-buffers). */
function viewOf(source: unknown): Uint8Array<ArrayBuffer> | undefined {
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source) && source.buffer instanceof ArrayBuffer) {
    return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  }
  return undefined;
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
