/**
 * Start-up checks of where the router runs, from the environment the runtime entry already read: the embedded
 * store keeps the queue in one process's memory, which some hosts quietly break. Fly.io may stop the machine
 * (auto-stop, deploys, host moves) or run several; Deno Deploy runs many short-lived isolates. The entry logs each
 * "warn" and should refuse to start on a "refuse".
 */
import type { Env, RouterConfig } from "../config.ts";

export interface DeploymentCheck {
  level: "warn" | "refuse";
  message: string;
}

export function deploymentChecks(env: Env, config: RouterConfig): DeploymentCheck[] {
  const checks: DeploymentCheck[] = [];
  const embedded = !config.redis;
  if (embedded && env.DENO_DEPLOYMENT_ID) {
    checks.push({
      level: "refuse",
      message: "Deno Deploy runs the router in many short-lived isolates, so the embedded store would split and " +
        "lose the queue. Set AUXOT_REDIS_URL and AUXOT_REDIS_TOKEN (Upstash).",
    });
  }
  if (embedded && env.FLY_APP_NAME) {
    checks.push({
      level: "warn",
      message: `On Fly.io (${env.FLY_APP_NAME}) with the embedded store, the queue, running jobs and the worker ` +
        "list live in this machine's memory: a stop or restart drops them and a second machine splits the fleet. " +
        'Keep auto_stop_machines = "off" and min_machines_running = 1 in fly.toml and run one machine ' +
        "(`fly scale count 1`), or set AUXOT_REDIS_URL (Upstash) to share state between machines.",
    });
  }
  return checks;
}
