/**
 * The fleet view on the Upstash store: workers seen within their TTL (with the jobs the store holds leased to each),
 * queue depth per lane and running jobs, in one script call (lua/fleet.ts).
 */
import type { FleetStatus, WorkerStatus } from "../store.ts";
import { fleetScript } from "./lua/fleet.ts";
import type { UpstashParts } from "./parts.ts";
import { asArray, asNumber, asString } from "./replies.ts";

export async function readFleet(parts: UpstashParts): Promise<FleetStatus> {
  const k = parts.keys;
  const reply = asArray(
    await parts.scripts.run(fleetScript, { workers: k.workers, lanes: k.lanes, running: k.running }, {
      now: parts.opts.now(),
      workerTtlMs: parts.opts.workerTtlMs,
      jobPrefix: parts.prefixes.jobPrefix,
      workerPrefix: parts.prefixes.workerPrefix,
      lanePrefix: parts.prefixes.lanePrefix,
    }),
    "fleet",
  );
  const active = new Map<string, number>();
  const flat = asArray(reply[3], "fleet");
  for (let i = 0; i + 1 < flat.length; i += 2) active.set(asString(flat[i], "fleet"), asNumber(flat[i + 1], "fleet"));
  const workers: WorkerStatus[] = asArray(reply[0], "fleet").map((row) => {
    const [id, info, seen] = asArray(row, "fleet");
    const activeJobs = active.get(asString(id, "fleet")) ?? 0;
    const reported = JSON.parse(asString(info, "fleet")) as WorkerStatus["info"];
    // An idle worker heartbeats only now and then (claims.ts): its reported `free` may predate its last job's
    // end. The jobs the store holds leased to it are current.
    return {
      info: { ...reported, free: Math.max(0, reported.slots - activeJobs) },
      lastSeenAt: asNumber(seen, "fleet"),
      activeJobs,
    };
  });
  const queued: Record<string, number> = {};
  for (const row of asArray(reply[1], "fleet")) {
    const [lane, length] = asArray(row, "fleet");
    queued[asString(lane, "fleet")] = asNumber(length, "fleet");
  }
  return { workers, queued, running: asNumber(reply[2], "fleet") };
}
