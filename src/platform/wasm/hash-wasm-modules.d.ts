/** Types for hash-wasm-modules.js: the precompiled modules handed to `installPrecompiledWasm` on Workers. */
export declare const hashWasmModules: { argon2: WebAssembly.Module; blake2b: WebAssembly.Module };
