/** Workers read their key from a file only its owner can read (or the variable): never needed on a command line. */
import assert from "node:assert/strict";
import { generateKey } from "../../src/auth/keys.ts";
import { ArgsError, connectionArgs } from "../../workers/common/worker-main.ts";

const spec = {
  keyFlag: "--gpu-key",
  keyVariable: "AUXOT_GPU_KEY",
  keyPrefix: "adm_",
  keyName: "worker key",
  keyHint: "",
  usage: "usage",
} as const;

Deno.test("worker key from --gpu-key-file or AUXOT_GPU_KEY_FILE; refused when others can read the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = generateKey("admin");
    const file = `${dir}/worker.key`;
    await Deno.writeTextFile(file, `${key}\n`, { mode: 0o600 });
    await Deno.chmod(file, 0o600);
    const url = "http://127.0.0.1:1";
    assert.equal(connectionArgs(spec, { routerUrl: url, keyFile: file }, {}).key, key);
    assert.equal(connectionArgs(spec, { routerUrl: url }, { AUXOT_GPU_KEY_FILE: file }).key, key);
    assert.throws(() => connectionArgs(spec, { routerUrl: url, keyFile: file, key }, {}), /not both/);
    await Deno.chmod(file, 0o644);
    assert.throws(
      () => connectionArgs(spec, { routerUrl: url, keyFile: file }, {}),
      (err) => err instanceof ArgsError && /other users .*chmod 600/.test(err.message),
    );
    assert.throws(() => connectionArgs(spec, { routerUrl: url, keyFile: `${dir}/missing` }, {}), ArgsError);
    assert.throws(() => connectionArgs(spec, { routerUrl: url }, {}), /--gpu-key-file FILE/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
