/**
 * Download pins from the registry: the worker fetches the pinned commit and accepts only the pinned sha256 — a hub
 * (or a mirror, HF_ENDPOINT) serving other bytes under the same name is refused before anything is downloaded.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DownloadError, downloadModel } from "../../workers/gpu/download.ts";
import { startFakeHub } from "./fake-hub.ts";

const REPO = "unsloth/Pinned-GGUF";
const FILE = "Pinned-Q4_K_S.gguf";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

Deno.test("a pinned download uses the pinned commit and refuses bytes other than the pinned sha256", async () => {
  const served = crypto.getRandomValues(new Uint8Array(50_000));
  const hub = await startFakeHub({ repos: { [REPO]: [{ path: FILE, data: served }] } });
  const modelsDir = await mkdtemp(join(tmpdir(), "auxot-pins-"));
  try {
    const ok = await downloadModel({
      repo: REPO,
      file: FILE,
      endpoint: hub.endpoint,
      modelsDir,
      revision: COMMIT,
      sha256: { [FILE]: sha256(served) },
      sleep: () => Promise.resolve(),
    });
    assert.equal(sha256(await Deno.readFile(ok.path)), sha256(served));
    assert.ok(hub.requests.some((r) => r.path === `${REPO}@${COMMIT}/${FILE}`), "fetched at the pinned commit");

    const otherDir = await mkdtemp(join(tmpdir(), "auxot-pins-"));
    try {
      const pinnedElsewhere = sha256(new Uint8Array(50_000));
      await assert.rejects(
        downloadModel({
          repo: REPO,
          file: FILE,
          endpoint: hub.endpoint,
          modelsDir: otherDir,
          revision: COMMIT,
          sha256: { [FILE]: pinnedElsewhere },
          sleep: () => Promise.resolve(),
        }),
        (err) => err instanceof DownloadError && err.code === "corrupt" && /registry pins/.test(err.message),
      );
      assert.deepEqual(await readdir(otherDir).catch(() => []), [], "nothing downloaded");
      // And a cached copy of other bytes is not taken for the pinned file either.
      await assert.rejects(
        downloadModel({
          repo: REPO,
          file: FILE,
          endpoint: hub.endpoint,
          modelsDir,
          sha256: { [FILE]: pinnedElsewhere },
        }),
        /registry pins/,
      );
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  } finally {
    await hub.close();
    await rm(modelsDir, { recursive: true, force: true });
  }
});
