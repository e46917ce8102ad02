/**
 * Bundles a Cloudflare Workers entry with esbuild into one ES module (`worker.js`) plus the `.wasm` files it imports,
 * copied next to it and kept as external imports (`./argon2.wasm`) so the platform precompiles them: hash-wasm's
 * WASM must not be compiled at run time on Workers (see src/platform/hash-wasm-workers.ts). zod, itty-router,
 * @upstash/redis and hash-wasm are bundled. Prints the bundle size (raw and gzip, as Workers' limit counts it).
 *
 * `deno run -A scripts/build-workers.ts [--entry src/entry-workers.ts] [--outdir dist/workers] [--minify]`
 * Tests import `buildWorkers` and run the output under real workerd (tests/fixtures/workerd.ts).
 */
import * as esbuild from "esbuild";
import { basename, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

export interface BuildWorkersOptions {
  /** The Workers entry (a module with `export default { fetch }`); relative paths are from the current directory. */
  entry: string;
  /** Where `worker.js` and the `.wasm` files go; created, and emptied of earlier `.js`/`.wasm` outputs. */
  outdir: string;
  minify?: boolean;
}

export interface BuildWorkersResult {
  outdir: string;
  /** The bundle, always named `worker.js`: the main module. */
  bundlePath: string;
  /** File names (in `outdir`) of the `.wasm` modules the bundle imports as `./<name>`. */
  wasmModules: string[];
  bundleBytes: number;
  /** worker.js plus the .wasm files, gzip-compressed one by one: roughly what Workers' upload limit counts. */
  totalGzipBytes: number;
}

export const BUNDLE_FILE_NAME = "worker.js";

/** This repository's node_modules, also used for entries outside the tree (tests build temp entries). */
const repoNodeModules = new URL("../node_modules", import.meta.url).pathname;

/**
 * esbuild resolves each `.wasm` import to its file, copies it to the output folder under its own name and rewrites
 * the import to `./<name>.wasm`, left external: workerd (a `wasm` module in the config) and Wrangler (CompiledWasm)
 * both load it as a precompiled `WebAssembly.Module`.
 */
function wasmModulesPlugin(outdir: string, collected: Map<string, string>): esbuild.Plugin {
  return {
    name: "wasm-modules",
    setup(build) {
      build.onResolve({ filter: /\.wasm$/ }, (args) => {
        const source = resolve(args.resolveDir, args.path);
        const name = basename(source);
        const earlier = collected.get(name);
        if (earlier && earlier !== source) {
          return { errors: [{ text: `two .wasm modules named ${name}: ${earlier} and ${source}` }] };
        }
        collected.set(name, source);
        return { path: `./${name}`, external: true };
      });
      build.onEnd(async (result) => {
        if (result.errors.length > 0) return;
        for (const [name, source] of collected) await Deno.copyFile(source, resolve(outdir, name));
      });
    },
  };
}

async function emptyBuildOutputs(outdir: string): Promise<void> {
  await Deno.mkdir(outdir, { recursive: true });
  for await (const entry of Deno.readDir(outdir)) {
    // Only what this script writes, so a mistaken --outdir cannot wipe unrelated files.
    if (entry.isFile && /\.(js|js\.map|wasm)$/.test(entry.name)) await Deno.remove(resolve(outdir, entry.name));
  }
}

async function gzipSize(bytes: Uint8Array<ArrayBuffer>): Promise<number> {
  const compressed = new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip")));
  return (await compressed.arrayBuffer()).byteLength;
}

/** Builds `options.entry` into `options.outdir`; stops esbuild's service afterwards (call it once at a time). */
export async function buildWorkers(options: BuildWorkersOptions): Promise<BuildWorkersResult> {
  const outdir = resolve(options.outdir);
  const bundlePath = resolve(outdir, BUNDLE_FILE_NAME);
  await emptyBuildOutputs(outdir);
  const wasmSources = new Map<string, string>();
  try {
    await esbuild.build({
      entryPoints: [resolve(options.entry)],
      outfile: bundlePath,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      // workerd first: packages with a Workers-specific export (and @upstash/redis/cloudflare) pick it.
      conditions: ["workerd", "worker", "browser"],
      nodePaths: [repoNodeModules],
      // Provided by the runtime: `node:*` with the `nodejs_compat` flag (the entry uses AsyncLocalStorage).
      external: ["node:*", "cloudflare:*"],
      minify: options.minify ?? false,
      plugins: [wasmModulesPlugin(outdir, wasmSources)],
      logLevel: "warning",
    });
  } finally {
    await esbuild.stop();
  }
  const files = [bundlePath, ...[...wasmSources.keys()].map((name) => resolve(outdir, name))];
  let totalGzipBytes = 0;
  for (const file of files) totalGzipBytes += await gzipSize(await Deno.readFile(file));
  return {
    outdir,
    bundlePath,
    wasmModules: [...wasmSources.keys()],
    bundleBytes: (await Deno.stat(bundlePath)).size,
    totalGzipBytes,
  };
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      entry: { type: "string", default: "src/entry-workers.ts" },
      outdir: { type: "string", default: "dist/workers" },
      minify: { type: "boolean", default: false },
    },
  });
  const result = await buildWorkers({ entry: values.entry, outdir: values.outdir, minify: values.minify });
  const shown = relative(Deno.cwd(), result.outdir) || ".";
  console.log(`${shown}/${BUNDLE_FILE_NAME}: ${kib(result.bundleBytes)} (${result.bundleBytes} bytes)`);
  for (const name of result.wasmModules) {
    const size = (await Deno.stat(resolve(result.outdir, name))).size;
    console.log(`${shown}/${name}: ${kib(size)} (wasm module)`);
  }
  console.log(`total gzip: ${kib(result.totalGzipBytes)} (entry ${relative(Deno.cwd(), resolve(values.entry))})`);
}

if (import.meta.main) await main();
