/**
 * `deno task setup` / `auxot-router setup`: creates keys and prints them ONCE with the Argon2id hashes the router
 * is configured with. Variants:
 *   (none)              print keys and hash variables
 *   --write-env         also write the hashes to .env (mode 0600); refuses to replace an existing file without --force
 *   --fly               print `fly secrets set ...` with the hashes and the model policy
 *   --wrangler          print `wrangler secret put` commands (Cloudflare Workers)
 *   --cli --model NAME  CLI-worker mode: router configuration (AUXOT_ENGINE=cli) and the worker command
 *   --new-tools-key     rotate only the tools key (with --write-env: replaces that line in the existing .env)
 *   --router-url URL    used in the printed worker commands (default http://localhost:8080)
 */
import { parseArgs } from "node:util";
import { createKeys, HASH_VARIABLE, type KeyWithHash } from "../src/keyset.ts";
import type { KeyRole } from "../src/auth/keys.ts";
import { dotEnvLine, readDotEnv, writeSecretFile } from "../src/platform/dotenv.ts";
import { readFile } from "node:fs/promises";

const USAGE =
  `Usage: deno task setup [--write-env [--force] [--env-file PATH]] [--fly | --wrangler] [--cli --model NAME]
                      [--new-tools-key] [--router-url URL]`;

export interface SetupOptions {
  writeEnv: boolean;
  force: boolean;
  envFile: string;
  fly: boolean;
  wrangler: boolean;
  cli: boolean;
  model?: string;
  newToolsKey: boolean;
  routerUrl: string;
}

export class UsageError extends Error {}

export function parseSetupArgs(args: string[]): SetupOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        "write-env": { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        "env-file": { type: "string", default: ".env" },
        fly: { type: "boolean", default: false },
        wrangler: { type: "boolean", default: false },
        cli: { type: "boolean", default: false },
        model: { type: "string" },
        "new-tools-key": { type: "boolean", default: false },
        "router-url": { type: "string", default: "http://localhost:8080" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) throw new UsageError(USAGE);
  if (v.fly && v.wrangler) throw new UsageError("--fly and --wrangler print different formats: pick one.");
  if (v.cli && !v.model) throw new UsageError("--cli needs --model NAME (e.g. --model opus).");
  if (v.model && !v.cli) throw new UsageError("--model is only used with --cli (the router's model is AUXOT_MODEL).");
  if (v.force && !v["write-env"]) throw new UsageError("--force only applies to --write-env.");
  if (v["new-tools-key"] && (v.cli || v.fly || v.wrangler)) {
    throw new UsageError("--new-tools-key rotates the tools key alone; combine it only with --write-env.");
  }
  if (!/^https?:\/\//.test(v["router-url"]!)) throw new UsageError(`--router-url must start with http:// or https://`);
  return {
    writeEnv: v["write-env"]!,
    force: v.force!,
    envFile: v["env-file"]!,
    fly: v.fly!,
    wrangler: v.wrangler!,
    cli: v.cli!,
    model: v.model,
    newToolsKey: v["new-tools-key"]!,
    routerUrl: v["router-url"]!.replace(/\/+$/, ""),
  };
}

const ROLE_LABEL: Record<KeyRole, string> = {
  admin: "Worker key (GPU and CLI workers)",
  api: "API key (callers: OpenAI/Anthropic SDKs, curl, Claude Code)",
  tools: "Tools key (tools workers)",
};

/** The policy variables printed with --fly / --cli (from the current environment, else the defaults). */
function policyVars(options: SetupOptions, env: Record<string, string | undefined>): [string, string][] {
  if (options.cli) return [["AUXOT_ENGINE", "cli"], ["AUXOT_MODEL", options.model!], ["AUXOT_MAX_PARALLEL", "1"]];
  const vars: [string, string][] = [];
  // The one-model variables, then those of a several-model policy (docs/models.md).
  for (
    const name of [
      "AUXOT_MODEL",
      "AUXOT_QUANTIZATION",
      "AUXOT_CTX_SIZE",
      "AUXOT_MAX_PARALLEL",
      "AUXOT_MODELS",
      "AUXOT_EMBEDDING_MODELS",
      "AUXOT_MODEL_ALIASES",
    ]
  ) {
    if (env[name]) vars.push([name, env[name]!]);
  }
  return vars;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'"'"'`)}'`;
}

/** Runs setup; returns the text for stdout. File writes happen here; nothing is logged. */
export async function runSetup(options: SetupOptions, env: Record<string, string | undefined>): Promise<string> {
  const roles: KeyRole[] = options.newToolsKey ? ["tools"] : ["admin", "api", "tools"];
  const keys = await createKeys(roles);
  const out: string[] = [];
  out.push("New keys — shown ONCE. Store them now (a password manager); the router keeps only their hashes.", "");
  for (const k of keys) out.push(`  ${ROLE_LABEL[k.role]}:`, `    ${k.key}`, "");

  const hashLines = keys.map((k) => dotEnvLine(HASH_VARIABLE[k.role], k.hash));
  const policy = policyVars(options, env);

  if (options.writeEnv) {
    out.push(await writeEnvFile(options, keys, policy));
  } else if (options.fly) {
    const pairs = [...keys.map((k) => [HASH_VARIABLE[k.role], k.hash] as [string, string]), ...policy];
    out.push(
      "Fly.io: set the router's secrets with",
      "",
      `  fly secrets set ${pairs.map(([n, v]) => `${n}=${shellQuote(v)}`).join(" \\\n    ")}`,
    );
  } else if (options.wrangler) {
    out.push("Cloudflare Workers: set the router's secrets with", "");
    for (const k of keys) {
      out.push(`  printf %s ${shellQuote(k.hash)} | npx wrangler secret put ${HASH_VARIABLE[k.role]}`);
    }
    out.push("", "and set AUXOT_REDIS_URL / AUXOT_REDIS_TOKEN (Upstash) the same way: Workers need the Upstash store.");
    if (policy.length) {
      out.push(
        "Model policy ([vars] in wrangler.toml):",
        ...policy.map(([n, v]) => `  ${n} = ${JSON.stringify(v)}`),
      );
    }
  } else {
    out.push("Router configuration (environment or .env):", "", ...hashLines.map((l) => `  ${l}`));
    if (policy.length) out.push(...policy.map(([n, v]) => `  ${dotEnvLine(n, v)}`));
  }

  const admin = keys.find((k) => k.role === "admin")?.key;
  const tools = keys.find((k) => k.role === "tools")?.key;
  // Keys never go on a command line (ps and shell history show those): the worker reads its key from a file that
  // only its owner can read, filled by pasting the key into `cat` (so it is in no history either).
  const keyFileSteps = (file: string, what: string) => [
    `  mkdir -p ~/.auxot && (umask 077; cat > ${file})   # paste the ${what}, then Enter and Ctrl-D`,
  ];
  out.push("");
  if (options.cli && admin) {
    out.push(
      "CLI mode: the router's policy says engine \"cli\", one slot per worker, the CLI's own tools off",
      "(enable some with AUXOT_CLI_TOOLS=Read,Grep on the router). Start a CLI worker on a machine where `claude` is logged in:",
      "",
      ...keyFileSteps("~/.auxot/worker.key", "worker key (adm_…)"),
      `  deno task worker:cli --gpu-key-file ~/.auxot/worker.key --router-url ${options.routerUrl}`,
      "",
      "Read docs/cli-workers.md first: serving a Claude subscription through an API may breach its terms of service.",
    );
  } else if (admin) {
    out.push(
      "Start a GPU worker:",
      "",
      ...keyFileSteps("~/.auxot/worker.key", "worker key (adm_…)"),
      `  deno task worker:gpu --gpu-key-file ~/.auxot/worker.key --router-url ${options.routerUrl}`,
    );
  }
  if (tools) {
    out.push(
      "",
      "Start a tools worker:",
      "",
      ...keyFileSteps("~/.auxot/tools.key", "tools key (tls_…)"),
      `  deno task worker:tools --tools-key-file ~/.auxot/tools.key --router-url ${options.routerUrl}`,
    );
  }
  return out.join("\n") + "\n";
}

async function writeEnvFile(options: SetupOptions, keys: KeyWithHash[], policy: [string, string][]): Promise<string> {
  const path = options.envFile;
  if (options.newToolsKey) {
    // Rotation: keep every other line of the existing file, replace the tools hash.
    let existing: string;
    try {
      existing = await readFile(path, "utf8");
    } catch {
      throw new UsageError(
        `--new-tools-key --write-env updates an existing ${path}, and there is none: run setup --write-env first.`,
      );
    }
    const line = dotEnvLine(HASH_VARIABLE.tools, keys[0].hash);
    const lines = existing.split("\n").filter((l) => !/^\s*(export\s+)?AUXOT_TOOLS_KEY_HASH\s*=/.test(l));
    while (lines.length && lines.at(-1) === "") lines.pop();
    await writeSecretFile(path, [...lines, line].join("\n") + "\n", { overwrite: true });
    return `Replaced AUXOT_TOOLS_KEY_HASH in ${path} (mode 0600). Restart the router and the tools workers.`;
  }
  if (!options.force && await readDotEnv(path) !== undefined) {
    throw new UsageError(`${path} exists; not overwriting it. Pass --force to replace it (its keys stop working).`);
  }
  const content = [
    "# Auxot router configuration, written by `deno task setup --write-env`. Hashes only: keys were shown once.",
    ...keys.map((k) => dotEnvLine(HASH_VARIABLE[k.role], k.hash)),
    ...policy.map(([n, v]) => dotEnvLine(n, v)),
  ].join("\n") + "\n";
  await writeSecretFile(path, content, { overwrite: options.force });
  return `Wrote the hashes to ${path} (mode 0600).`;
}

if (import.meta.main) {
  try {
    const options = parseSetupArgs(Deno.args);
    const env = { ...(await readDotEnv(".env") ?? {}), ...Deno.env.toObject() };
    console.log(await runSetup(options, env));
  } catch (err) {
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code === "EEXIST") {
      console.error(`setup: ${(err as Error).message}`);
      Deno.exit(2);
    }
    throw err;
  }
}
