/**
 * `.env` files: parsing (KEY=VALUE, optional quotes, # comments) and writing files that hold secrets with mode
 * 0600, never replacing an existing file unless asked. Used by the Deno entry and the setup script.
 */
import { chmod, open, readFile, rename } from "node:fs/promises";

export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match || line.trimStart().startsWith("#")) continue;
    let value = match[2];
    if (/^'.*'$/.test(value)) value = value.slice(1, -1);
    else if (/^".*"$/.test(value)) value = value.slice(1, -1).replace(/\\n/g, "\n").replace(/\\"/g, '"');
    else value = value.replace(/\s+#.*$/, "");
    out[match[1]] = value;
  }
  return out;
}

export async function readDotEnv(path: string): Promise<Record<string, string> | undefined> {
  try {
    return parseDotEnv(await readFile(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Quotes a value for a .env line when it needs it (Argon2id hashes contain `$`, so always single-quote those). */
export function dotEnvLine(name: string, value: string): string {
  return /^[A-Za-z0-9_./:,@+-]*$/.test(value) ? `${name}=${value}` : `${name}='${value.replaceAll("'", "")}'`;
}

/**
 * Writes a file readable by its owner only. With `overwrite: false` an existing file is never touched (the
 * exclusive create fails). The content is written to a 0600 temporary file first, then renamed into place.
 */
export async function writeSecretFile(path: string, content: string, options: { overwrite: boolean }): Promise<void> {
  if (!options.overwrite) {
    const handle = await open(path, "wx", 0o600);
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    await chmod(path, 0o600);
    return;
  }
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  const handle = await open(temp, "wx", 0o600);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await chmod(path, 0o600);
}
