/**
 * The Upstash REST bridge fixture as a process of its own, for runs where routers in other processes (Deno,
 * workerd) share it and outages kill it:
 *
 *   deno run -A tests/reliability/bridge-process.ts --redis-port P --port Q   (token in AUXOT_BRIDGE_TOKEN)
 *
 * Prints `{"url": "http://127.0.0.1:Q"}` when ready; serves until killed.
 *
 * The fixture's own standalone mode takes the token on the command line (visible in the process list); this one
 * reads it from the environment.
 */
import { parseArgs } from "node:util";
import { startUpstashBridge } from "../fixtures/upstash-bridge.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "redis-port": { type: "string" }, port: { type: "string" } },
});
const token = Deno.env.get("AUXOT_BRIDGE_TOKEN");
const redisPort = Number(values["redis-port"]);
if (!token || !Number.isInteger(redisPort)) {
  console.error("usage: bridge-process.ts --redis-port P [--port Q]  (token in AUXOT_BRIDGE_TOKEN)");
  Deno.exit(2);
}
const bridge = await startUpstashBridge({ redisPort, token, port: Number(values.port ?? 0) });
console.log(JSON.stringify({ url: bridge.url }));
