/**
 * The model downloader against a local imitation of the Hugging Face hub (tests/gpu/fake-hub.ts): the hub's
 * URL layout, its CDN redirect to another origin, X-Linked-Size / X-Linked-Etag, Range support and error codes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  createProgressReporter,
  DownloadError,
  downloadModel,
  type DownloadProgress,
  localModelPath,
} from "../../workers/gpu/download.ts";
import { type FakeHub, type FakeHubOptions, startFakeHub } from "./fake-hub.ts";

const REPO = "unsloth/Tiny-GGUF";

/** Deterministic pseudo-random bytes (not compressible, so sizes are what they say). */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

async function withHub(
  options: FakeHubOptions,
  test: (hub: FakeHub, modelsDir: string) => Promise<void>,
): Promise<void> {
  const modelsDir = await mkdtemp(join(tmpdir(), "auxot-download-"));
  const hub = await startFakeHub(options);
  try {
    await test(hub, modelsDir);
  } finally {
    await hub.close();
    await rm(modelsDir, { recursive: true, force: true });
  }
}

const noSleep = () => Promise.resolve();

Deno.test("downloads a file through the CDN redirect and verifies it", async () => {
  const model = bytes(300_000, 1);
  await withHub({ repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] } }, async (hub, modelsDir) => {
    const progress: DownloadProgress[] = [];
    const result = await downloadModel({
      repo: REPO,
      file: "Tiny-Q4_K_S.gguf",
      endpoint: hub.endpoint,
      modelsDir,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(result.path, join(modelsDir, "unsloth", "Tiny-GGUF", "Tiny-Q4_K_S.gguf"));
    assert.deepEqual(result.files, [result.path]);
    assert.equal(result.downloadedBytes, model.length);
    assert.equal(sha256(await readFile(result.path)), sha256(model));
    assert.equal(hub.bytesServed(), model.length);
    // The hub answered the HEAD and GET with a redirect; the bytes came from the CDN.
    assert.deepEqual(hub.requests.map((r) => `${r.server} ${r.method} ${r.status}`), [
      "hub HEAD 302",
      "hub GET 302",
      "cdn GET 200",
    ]);
    const last = progress[progress.length - 1];
    assert.equal(last.done, true);
    assert.equal(last.receivedBytes, model.length);
    assert.equal(last.overallTotalBytes, model.length);
    const entries = await readdir(dirname(result.path));
    assert.deepEqual(entries.sort(), ["Tiny-Q4_K_S.gguf", "Tiny-Q4_K_S.gguf.verified.json"]);

    // A second call finds the verified file and transfers nothing.
    const again = await downloadModel({ repo: REPO, file: "Tiny-Q4_K_S.gguf", endpoint: hub.endpoint, modelsDir });
    assert.equal(again.downloadedBytes, 0);
    assert.equal(hub.bytesServed(), model.length);
  });
});

Deno.test("resumes from a partial file and fetches only the rest", async () => {
  const model = bytes(500_000, 2);
  await withHub({ repos: { [REPO]: [{ path: "Q8_0/Tiny-Q8_0.gguf", data: model }] } }, async (hub, modelsDir) => {
    const local = localModelPath(modelsDir, REPO, "Q8_0/Tiny-Q8_0.gguf");
    await mkdir(dirname(local), { recursive: true });
    const already = 123_457;
    await writeFile(`${local}.part`, model.subarray(0, already));
    const result = await downloadModel({ repo: REPO, file: "Q8_0/Tiny-Q8_0.gguf", endpoint: hub.endpoint, modelsDir });
    assert.equal(result.path, local);
    assert.equal(result.downloadedBytes, model.length - already);
    assert.equal(hub.bytesServed("Q8_0/Tiny-Q8_0.gguf"), model.length - already);
    const cdnGet = hub.requests.find((r) => r.server === "cdn");
    assert.equal(cdnGet?.range, `bytes=${already}-`);
    assert.equal(cdnGet?.status, 206);
    assert.equal(sha256(await readFile(local)), sha256(model));
    await assert.rejects(stat(`${local}.part`));
  });
});

Deno.test("a dropped connection is retried from where it stopped", async () => {
  const model = bytes(400_000, 3);
  const options: FakeHubOptions = {
    repos: { [REPO]: [{ path: "Tiny-Q6_K.gguf", data: model }] },
    dropAfter: { "Tiny-Q6_K.gguf": [100_000, 150_000] },
    failFirstResolves: 1,
  };
  await withHub(options, async (hub, modelsDir) => {
    const waits: number[] = [];
    const result = await downloadModel({
      repo: REPO,
      file: "Tiny-Q6_K.gguf",
      endpoint: hub.endpoint,
      modelsDir,
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      backoffMs: { base: 1000, max: 8000 },
    });
    assert.equal(sha256(await readFile(result.path)), sha256(model));
    // One 503 on HEAD, two drops: three waits, each within its jittered bound.
    assert.equal(waits.length, 3);
    waits.forEach((ms, i) => assert.ok(ms >= 0 && ms <= 1000 * 2 ** i, `wait ${i}: ${ms}`));
    const ranges = hub.requests.filter((r) => r.server === "cdn").map((r) => r.range);
    assert.deepEqual(ranges, [undefined, "bytes=100000-", "bytes=250000-"]);
    assert.equal(hub.bytesServed(), model.length);
  });
});

Deno.test("a corrupted download is rejected and deleted", async () => {
  const model = bytes(200_000, 4);
  const options = { repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] }, corrupt: ["Tiny-Q4_K_S.gguf"] };
  await withHub(options, async (hub, modelsDir) => {
    const error = await downloadModel({ repo: REPO, file: "Tiny-Q4_K_S.gguf", endpoint: hub.endpoint, modelsDir })
      .then(() => undefined, (err: unknown) => err);
    assert.ok(error instanceof DownloadError, String(error));
    assert.equal(error.code, "corrupt");
    assert.match(
      error.message,
      /unsloth\/Tiny-GGUF\/Tiny-Q4_K_S\.gguf is corrupted \(sha256 [0-9a-f]{64}, the hub says/,
    );
    assert.match(error.message, new RegExp(sha256(model)));
    const local = localModelPath(modelsDir, REPO, "Tiny-Q4_K_S.gguf");
    await assert.rejects(stat(local));
    await assert.rejects(stat(`${local}.part`));
  });
});

Deno.test("a local file that no longer matches the hub is replaced", async () => {
  const model = bytes(50_000, 5);
  await withHub({ repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] } }, async (hub, modelsDir) => {
    const local = localModelPath(modelsDir, REPO, "Tiny-Q4_K_S.gguf");
    await mkdir(dirname(local), { recursive: true });
    await writeFile(local, bytes(50_000, 6)); // same size, other bytes, no marker
    const result = await downloadModel({ repo: REPO, file: "Tiny-Q4_K_S.gguf", endpoint: hub.endpoint, modelsDir });
    assert.equal(result.downloadedBytes, model.length);
    assert.equal(sha256(await readFile(local)), sha256(model));
  });
});

Deno.test("404 names the repository and the file", async () => {
  await withHub({ repos: { [REPO]: [] } }, async (hub, modelsDir) => {
    await assert.rejects(
      downloadModel({ repo: REPO, file: "Missing-Q4_K_M.gguf", endpoint: hub.endpoint, modelsDir }),
      (err: unknown) => {
        assert.ok(err instanceof DownloadError);
        assert.equal(err.code, "not_found");
        assert.equal(
          err.message,
          'File "Missing-Q4_K_M.gguf" not found in Hugging Face repository "unsloth/Tiny-GGUF" (HTTP 404)',
        );
        return true;
      },
    );
    await assert.rejects(
      downloadModel({ repo: "nobody/Nothing-GGUF", file: "x-Q4_K_M.gguf", endpoint: hub.endpoint, modelsDir }),
      /repository "nobody\/Nothing-GGUF" not found/,
    );
    // Nothing was retried: 404 is final.
    assert.equal(hub.requests.length, 2);
  });
});

Deno.test("a sharded model downloads every shard and the vision projector", async () => {
  const shards = [bytes(70_000, 7), bytes(80_000, 8), bytes(9_000, 9)];
  const mmproj = bytes(20_000, 10);
  const files = [
    ...shards.map((data, i) => ({ path: `BF16/Tiny-BF16-0000${i + 1}-of-00003.gguf`, data })),
    { path: "mmproj-F16.gguf", data: mmproj },
    { path: "README.md", data: new TextEncoder().encode("# Tiny\n"), lfs: false },
  ];
  await withHub({ repos: { [REPO]: files } }, async (hub, modelsDir) => {
    const progress: DownloadProgress[] = [];
    const result = await downloadModel({
      repo: REPO,
      file: "BF16/Tiny-BF16-00001-of-00003.gguf",
      mmproj: "mmproj-F16.gguf",
      endpoint: hub.endpoint,
      modelsDir,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(result.path, localModelPath(modelsDir, REPO, "BF16/Tiny-BF16-00001-of-00003.gguf"));
    assert.equal(result.files.length, 3);
    for (const [i, path] of result.files.entries()) assert.equal(sha256(await readFile(path)), sha256(shards[i]));
    assert.equal(sha256(await readFile(result.mmprojPath!)), sha256(mmproj));
    const total = shards.reduce((s, d) => s + d.length, 0) + mmproj.length;
    assert.equal(result.downloadedBytes, total);
    const done = progress.filter((p) => p.done);
    assert.deepEqual(done.map((p) => `${p.fileIndex}/${p.fileCount}`), ["1/4", "2/4", "3/4", "4/4"]);
    assert.equal(done[3].overallReceivedBytes, total);
  });
});

Deno.test("HF_TOKEN goes to the hub as a Bearer token and never to the CDN", async () => {
  const model = bytes(10_000, 11);
  const options = {
    repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] },
    gated: { token: "hf_test_secret", repos: [REPO] },
  };
  await withHub(options, async (hub, modelsDir) => {
    await assert.rejects(
      downloadModel({ repo: REPO, file: "Tiny-Q4_K_S.gguf", endpoint: hub.endpoint, modelsDir }),
      (err: unknown) => {
        assert.ok(err instanceof DownloadError);
        assert.equal(err.code, "unauthorized");
        assert.match(err.message, /is gated: .*set HF_TOKEN/);
        return true;
      },
    );
    const result = await downloadModel({
      repo: REPO,
      file: "Tiny-Q4_K_S.gguf",
      endpoint: hub.endpoint,
      modelsDir,
      token: "hf_test_secret",
    });
    assert.equal(sha256(await readFile(result.path)), sha256(model));
    const hubCalls = hub.requests.filter((r) => r.server === "hub" && r.status === 302);
    assert.equal(hubCalls.length, 2);
    assert.ok(hubCalls.every((r) => r.authorized));
    const cdnCalls = hub.requests.filter((r) => r.server === "cdn");
    assert.equal(cdnCalls.length, 1);
    assert.equal(cdnCalls[0].authorized, false);
  });
});

Deno.test("free disk space is checked before anything is fetched", async () => {
  const model = bytes(100_000, 12);
  await withHub({ repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] } }, async (hub, modelsDir) => {
    await assert.rejects(
      downloadModel({
        repo: REPO,
        file: "Tiny-Q4_K_S.gguf",
        endpoint: hub.endpoint,
        modelsDir,
        freeDiskBytes: () => Promise.resolve(99_950),
      }),
      (err: unknown) =>
        err instanceof DownloadError && err.code === "disk_full" &&
        /^Not enough disk space in .* for unsloth\/Tiny-GGUF\/Tiny-Q4_K_S\.gguf: 100\.0 KB to download, 100\.0 KB free$/
          .test(err.message),
    );
    assert.equal(hub.bytesServed(), 0);
  });
});

Deno.test("a verified copy is used when the hub cannot be reached", async () => {
  const model = bytes(30_000, 13);
  let modelsDir = "";
  let endpoint = "";
  await withHub({ repos: { [REPO]: [{ path: "Tiny-Q4_K_S.gguf", data: model }] } }, async (hub) => {
    endpoint = hub.endpoint;
    modelsDir = await mkdtemp(join(tmpdir(), "auxot-download-offline-"));
    await downloadModel({ repo: REPO, file: "Tiny-Q4_K_S.gguf", endpoint, modelsDir });
  });
  try {
    // The hub is gone now: one failed HEAD, then the verified local copy.
    let waits = 0;
    const result = await downloadModel({
      repo: REPO,
      file: "Tiny-Q4_K_S.gguf",
      endpoint,
      modelsDir,
      sleep: () => Promise.resolve(void waits++),
    });
    assert.equal(result.downloadedBytes, 0);
    assert.equal(waits, 0);
    assert.equal(sha256(await readFile(result.path)), sha256(model));
  } finally {
    await rm(modelsDir, { recursive: true, force: true });
  }
});

Deno.test("network failures give up after the configured attempts", async () => {
  // A port nothing listens on: take one from a closed server.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const modelsDir = await mkdtemp(join(tmpdir(), "auxot-download-"));
  try {
    await assert.rejects(
      downloadModel({
        repo: REPO,
        file: "Tiny-Q4_K_S.gguf",
        endpoint: `http://127.0.0.1:${port}`,
        modelsDir,
        attempts: 3,
        sleep: noSleep,
      }),
      (err: unknown) => err instanceof DownloadError && err.code === "network" && /after 3 attempts/.test(err.message),
    );
  } finally {
    await rm(modelsDir, { recursive: true, force: true });
  }
});

Deno.test("progress: a bar on a terminal, throttled lines otherwise", () => {
  const progress = (received: number, done = false): DownloadProgress => ({
    file: "Q4/Tiny-Q4_K_S-00001-of-00002.gguf",
    fileIndex: 1,
    fileCount: 2,
    receivedBytes: received,
    totalBytes: 2_000_000_000,
    overallReceivedBytes: received,
    overallTotalBytes: 4_000_000_000,
    bytesPerSecond: 100_000_000,
    etaSeconds: (4_000_000_000 - received) / 100_000_000,
    done,
  });
  let clock = 0;
  const written: string[] = [];
  const bar = createProgressReporter({
    stream: { isTTY: true, write: (t: string) => written.push(t) },
    now: () => clock,
  });
  bar(progress(1_000_000_000));
  assert.equal(written.length, 1);
  assert.equal(
    written[0],
    `\r\x1b[2K[${"#".repeat(6)}${
      ".".repeat(18)
    }] [1/2] Tiny-Q4_K_S-00001-of-00002.gguf 25% 1.0 GB/4.0 GB 100.0 MB/s ETA 30s`,
  );
  const lines: string[] = [];
  const log = createProgressReporter({
    stream: { isTTY: false, write: () => assert.fail("no direct writes when a log callback is given") },
    log: (line) => lines.push(line),
    intervalMs: 10_000,
    now: () => clock,
  });
  log(progress(100));
  clock = 5_000;
  log(progress(200)); // throttled
  clock = 10_000;
  log(progress(400_000_000));
  clock = 10_001;
  log(progress(2_000_000_000, true)); // the end of a file is always reported
  assert.equal(lines.length, 3);
  assert.match(lines[1], /10% 400\.0 MB\/4\.0 GB 100\.0 MB\/s ETA 36s$/);
});
