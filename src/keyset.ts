/**
 * A fresh set of keys with their hashes: what `deno task setup` prints and what a first run writes to `.env`.
 */
import { generateKey, hashKey, type KeyRole } from "./auth/keys.ts";

export const HASH_VARIABLE: Record<KeyRole, string> = {
  admin: "AUXOT_ADMIN_KEY_HASH",
  api: "AUXOT_API_KEY_HASH",
  tools: "AUXOT_TOOLS_KEY_HASH",
};

export interface KeyWithHash {
  role: KeyRole;
  key: string;
  hash: string;
}

export async function createKeys(roles: KeyRole[]): Promise<KeyWithHash[]> {
  const out: KeyWithHash[] = [];
  for (const role of roles) {
    const key = generateKey(role);
    out.push({ role, key, hash: await hashKey(key) });
  }
  return out;
}
