/**
 * The GGUF header reader, on files written by tests/fixtures (a real tiny model and full-size-looking skeletons),
 * checked against node-llama-cpp's own GGUF parser; and over HTTP against the local hub imitation, counting the
 * bytes it serves to show that reading a header is a few small range requests, not a download.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufInsights, readGgufFileInfo } from "node-llama-cpp";
import { GgufHeaderError, readGgufHeader } from "../../workers/gpu/gguf-header.ts";
import { writeSkeletonGguf, writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { startFakeHub } from "./fake-hub.ts";

async function withTempDir(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "auxot-gguf-"));
  try {
    await test(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

Deno.test("reads a tiny model's header like node-llama-cpp does", async () => {
  await withTempDir(async (dir) => {
    const { path, bytes } = await writeTinyGguf(join(dir, "tiny.gguf"), { layers: 3, heads: 4, headsKv: 2 });
    const header = await readGgufHeader(path);
    const reference = await readGgufFileInfo(path);
    const insights = await GgufInsights.from(reference);
    assert.equal(header.architecture, "llama");
    assert.equal(header.version, 3);
    assert.equal(header.blockCount, 3);
    assert.equal(header.embeddingLength, 64);
    assert.equal(header.headCount, 4);
    assert.equal(header.headCountKv, 2);
    assert.equal(header.headDim, 16);
    assert.equal(header.keyLength, 16);
    assert.equal(header.valueLength, 16);
    assert.equal(header.contextLength, 4096);
    assert.equal(header.tensors.length, Number(reference.tensorCount));
    assert.equal(header.tensorBytes, insights.modelSize);
    assert.ok(header.dataOffset + header.tensorBytes <= bytes && bytes - header.dataOffset - header.tensorBytes < 64);
    assert.equal(header.architecture, reference.metadata.general.architecture);
    assert.equal(header.vocabSize, reference.metadata.tokenizer.ggml.tokens.length);
  });
});

Deno.test("reads a full-size skeleton's header: sizes agree with node-llama-cpp for each tensor type", async () => {
  await withTempDir(async (dir) => {
    for (const tensorType of ["Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0", "F16"] as const) {
      const { path, bytes } = await writeSkeletonGguf(join(dir, `skeleton-${tensorType}.gguf`), { tensorType });
      const header = await readGgufHeader(path);
      const insights = await GgufInsights.from(await readGgufFileInfo(path));
      assert.equal(header.tensorBytes, insights.modelSize, tensorType);
      assert.equal(header.blockCount, 32);
      assert.equal(header.headCountKv, 8);
      assert.equal(header.feedForwardLength, 14336);
      assert.equal(header.vocabSize, 32000);
      assert.deepEqual(header.metadata.get("tokenizer.ggml.tokens"), {
        kind: "array-summary",
        elementType: 8,
        length: 32000,
      });
      assert.ok(header.bytesRead < bytes / 1000, `${tensorType}: read ${header.bytesRead} of ${bytes}`);
    }
    const q4 = await readGgufHeader(join(dir, "skeleton-Q4_K.gguf"));
    assert.equal(q4.fileType, 15);
    assert.equal(q4.fileTypeName, "Q4_K_M");
    // By hand: 2-D weights at Q4_K (144 bytes per 256 weights), norms in F32.
    const perLayer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336;
    const matrices = 32000 * 4096 * 2 + 32 * perLayer;
    const norms = (32 * 2 + 1) * 4096;
    assert.equal(q4.tensorBytes, (matrices / 256) * 144 + norms * 4);
  });
});

Deno.test("reads a header over HTTP with growing range requests, never the whole file", async () => {
  await withTempDir(async (dir) => {
    const { path, bytes } = await writeSkeletonGguf(join(dir, "big.gguf"), { vocabSize: 152_064 });
    const local = await readGgufHeader(path);
    const repo = "someone/Big-GGUF";
    const hub = await startFakeHub({
      repos: { [repo]: [{ path: "Big-Q4_K_M.gguf", diskPath: path, size: bytes, sha256: "0".repeat(64) }] },
    });
    try {
      // Through the hub's resolve URL: fetch follows its redirect to the CDN, which serves the ranges.
      const url = `${hub.endpoint}/${repo}/resolve/main/Big-Q4_K_M.gguf`;
      const remote = await readGgufHeader(url, { initialBytes: 64 * 1024, headers: { authorization: "Bearer hf_x" } });
      assert.equal(remote.tensorBytes, local.tensorBytes);
      assert.equal(remote.dataOffset, local.dataOffset);
      assert.deepEqual(remote.tensors, local.tensors);
      assert.equal(remote.vocabSize, 152_064);
      const served = hub.bytesServed("Big-Q4_K_M.gguf");
      const ranges = hub.requests.filter((r) => r.server === "cdn").map((r) => r.range);
      assert.ok(ranges.length >= 3, `expected the range to grow, got ${ranges.join(" ")}`);
      assert.equal(ranges[0], "bytes=0-65535");
      // Each byte once: the ranges follow each other, and the total is what the parser held.
      let next = 0;
      for (const range of ranges) {
        const [start, end] = /bytes=(\d+)-(\d+)/.exec(range ?? "")!.slice(1).map(Number);
        assert.equal(start, next);
        next = end + 1;
      }
      assert.equal(served, remote.bytesRead);
      assert.ok(served >= remote.dataOffset);
      assert.ok(served < bytes / 500, `served ${served} of ${bytes} bytes`);
      // The token reached the hub; fetch dropped it on the redirect to the CDN's other origin.
      assert.ok(hub.requests.filter((r) => r.server === "hub").every((r) => r.authorized));
      assert.ok(hub.requests.filter((r) => r.server === "cdn").every((r) => !r.authorized));
    } finally {
      await hub.close();
    }
  });
});

Deno.test("a server that ignores Range is cut off once the header is read", async () => {
  await withTempDir(async (dir) => {
    const { path, bytes } = await writeSkeletonGguf(join(dir, "big.gguf"), { tensorType: "Q8_0" });
    const repo = "someone/Big-GGUF";
    const hub = await startFakeHub({
      repos: { [repo]: [{ path: "Big-Q8_0.gguf", diskPath: path, size: bytes, sha256: "0".repeat(64) }] },
      ranges: false,
    });
    try {
      const header = await readGgufHeader(`${hub.cdn}/${repo}/Big-Q8_0.gguf`);
      assert.equal(header.blockCount, 32);
      // Socket buffers let some bytes through after the reader hangs up; still a tiny share of 8.5 GB.
      assert.ok(hub.bytesServed() < 64 * 1024 * 1024, `served ${hub.bytesServed()}`);
    } finally {
      await hub.close();
    }
  });
});

Deno.test("rejects files that are not GGUF or end inside the header", async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, "not.gguf"), new TextEncoder().encode("<html>Not a model</html>"));
    await assert.rejects(readGgufHeader(join(dir, "not.gguf")), (err: unknown) => {
      assert.ok(err instanceof GgufHeaderError);
      assert.match(err.message, /not a GGUF file/);
      return true;
    });
    const { path } = await writeTinyGguf(join(dir, "tiny.gguf"));
    const full = await Deno.readFile(path);
    await writeFile(join(dir, "cut.gguf"), full.subarray(0, 3000));
    await assert.rejects(
      readGgufHeader(join(dir, "cut.gguf"), { initialBytes: 1024 }),
      /file ends inside the GGUF header/,
    );
  });
});
