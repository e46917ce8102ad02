/**
 * Deno entry: reads the environment and `.env`, validates the configuration once (exiting with a message naming
 * the variable on any problem), builds the store and serves the platform-neutral app with Deno.serve. On a first
 * run with no keys configured it creates them: raw keys shown once on the terminal, hashes written to a 0600 .env.
 */
import { createApp } from "./app.ts";
import { ConfigError, describeConfig, type Env, loadConfig } from "./config.ts";
import { createKeys, HASH_VARIABLE } from "./keyset.ts";
import { createLogger, logFormatFrom } from "./log.ts";
import { dotEnvLine, readDotEnv, writeSecretFile } from "./platform/dotenv.ts";
import { deploymentChecks } from "./ops/deploy-checks.ts";
import { createStore } from "./store/create.ts";
import { shareBodyDeadlines } from "./http/body.ts";

const ENV_FILE = Deno.env.get("AUXOT_ENV_FILE") ?? ".env";
const ROLE_LABEL = {
  admin: "worker key (GPU/CLI workers)",
  api: "API key (callers)",
  tools: "tools key (tools workers)",
};

async function readEnv(): Promise<Env> {
  const fromFile = await readDotEnv(ENV_FILE) ?? {};
  // The process environment wins over .env, as with every dotenv loader.
  return { ...fromFile, ...Deno.env.toObject() };
}

/**
 * First run: no hashes anywhere and no .env yet → create keys so the README's first command just works. Only on a
 * terminal: a deployment's output goes to logs someone else keeps, where a key must never appear, so there a
 * missing hash is a start-up error naming the variable.
 */
async function firstRunKeys(env: Env): Promise<Env> {
  if (env.AUXOT_ADMIN_KEY_HASH || env.AUXOT_API_KEY_HASH) return env;
  if (!Deno.stderr.isTerminal()) return env;
  if (await readDotEnv(ENV_FILE) !== undefined) return env; // a .env exists: its problems are reported, not papered over
  const keys = await createKeys(["admin", "api", "tools"]);
  const lines = [
    "# Written by the Auxot router on its first run. Hashes only: the keys were shown once.",
    ...keys.map((k) => dotEnvLine(HASH_VARIABLE[k.role], k.hash)),
  ];
  await writeSecretFile(ENV_FILE, lines.join("\n") + "\n", { overwrite: false });
  const out = [
    "",
    "No keys were configured, so new ones were created. They are shown ONCE; the router keeps only their hashes,",
    `written to ${ENV_FILE} (mode 0600).`,
    "",
    ...keys.map((k) => `  ${ROLE_LABEL[k.role].padEnd(30)}${k.key}`),
    "",
  ];
  console.error(out.join("\n"));
  return { ...env, ...Object.fromEntries(keys.map((k) => [HASH_VARIABLE[k.role], k.hash])) };
}

async function main(): Promise<void> {
  let config, env;
  try {
    env = await firstRunKeys(await readEnv());
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`auxot-router: ${err.message}`);
      Deno.exit(1);
    }
    if (err instanceof Deno.errors.PermissionDenied || (err as { code?: string }).code === "EACCES") {
      console.error(
        `auxot-router: no keys are configured and ${ENV_FILE} cannot be written here. Set AUXOT_ADMIN_KEY_HASH and ` +
          "AUXOT_API_KEY_HASH (run `deno task setup` elsewhere; `setup --fly` prints them as Fly secrets).",
      );
      Deno.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, undefined, {}, logFormatFrom(env, Deno.stdout.isTerminal()));
  for (const check of deploymentChecks(env, config)) {
    if (check.level === "refuse") {
      console.error(`auxot-router: ${check.message}`);
      Deno.exit(1);
    }
    log.warn(check.message);
  }
  const store = createStore(config);
  const app = createApp({ config, store, log });
  shareBodyDeadlines(); // one process serves every request: one timer for all body deadlines (src/http/body.ts)
  const controller = new AbortController();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    signal: controller.signal,
    onListen: ({ hostname, port }) =>
      log.info("router listening", { url: `http://${hostname}:${port}`, ...describeConfig(config) }),
  }, (request, info) => app.fetch(request, { client: (info.remoteAddr as Deno.NetAddr).hostname }));
  // A long-lived process sweeps on a timer too, so leases expire even when no request arrives.
  const sweeper = setInterval(() => app.ctx.reapSoon(), store.kind === "embedded" ? 2_000 : 30_000);
  const stop = () => {
    log.info("shutting down");
    clearInterval(sweeper);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  await store.close();
}

await main();
