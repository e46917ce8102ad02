/**
 * A tiny Worker for tests/workers/hash-wasm-workerd.test.ts: hashes and verifies Argon2id with hash-wasm inside
 * workerd, using the precompiled WASM shim unless the `PRECOMPILED_WASM` binding is "off" (which must then fail with
 * workerd's "Wasm code generation disallowed by embedder", proving the shim is what makes it work).
 *
 * POST /hash   {"password": string}                  → {"hash": "$argon2id$..."}
 * POST /verify {"password": string, "hash": string}  → {"valid": boolean}
 * Failures → 500 {"error": message}.
 */
import { argon2id, argon2Verify } from "hash-wasm";
import { z } from "zod";
import { installPrecompiledWasm } from "../../src/platform/hash-wasm-workers.ts";
import { hashWasmModules } from "../../src/platform/wasm/hash-wasm-modules.js";

interface ProbeEnv {
  PRECOMPILED_WASM?: string;
}

const hashRequest = z.object({ password: z.string() });
const verifyRequest = z.object({ password: z.string(), hash: z.string() });

/** OWASP's minimum Argon2id profile; the tests only need a real, cross-checkable PHC string. */
const argon2Params = { parallelism: 1, iterations: 2, memorySize: 19456, hashLength: 32 } as const;

let shimDecided = false;

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}

async function handle(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (request.method === "POST" && path === "/hash") {
    const { password } = hashRequest.parse(await request.json());
    const salt = crypto.getRandomValues(new Uint8Array(16));
    return json({ hash: await argon2id({ ...argon2Params, password, salt, outputType: "encoded" }) });
  }
  if (request.method === "POST" && path === "/verify") {
    const { password, hash } = verifyRequest.parse(await request.json());
    return json({ valid: await argon2Verify({ password, hash }) });
  }
  return json({ error: "not found" }, 404);
}

export default {
  async fetch(request: Request, env: ProbeEnv): Promise<Response> {
    // Decided on the first request because the switch is a binding; a real entry installs at module scope.
    if (!shimDecided) {
      if (env.PRECOMPILED_WASM !== "off") installPrecompiledWasm(hashWasmModules);
      shimDecided = true;
    }
    try {
      return await handle(request);
    } catch (error) {
      return json({ error: error instanceof Error ? error.message : String(error) }, 500);
    }
  },
};
