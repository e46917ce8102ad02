// @ts-self-types="./hash-wasm-modules.d.ts"
/**
 * hash-wasm's argon2 and blake2b WebAssembly, imported as precompiled modules: for the Workers bundle only.
 *
 * Under esbuild (scripts/build-workers.ts) + workerd and under Wrangler, a default import of a `.wasm` file is a
 * `WebAssembly.Module` compiled by the platform (Wrangler's default rule: `**\/*.wasm` → CompiledWasm). This file is
 * JavaScript with `@ts-self-types` because `deno check` types a `.wasm` import as the instantiated module's exports,
 * which have no default export; Deno never loads this file (Deno and Node compile hash-wasm's WASM themselves).
 */
import argon2 from "./argon2.wasm";
import blake2b from "./blake2b.wasm";

export const hashWasmModules = { argon2, blake2b };
