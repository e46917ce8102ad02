/**
 * Worker for bench/workerd-wake-cost.ts: `GET /?timers=N&ms=M` awaits N timers of M ms one after another, `GET
 * /?fetches=N` awaits N subrequests to env.TARGET one after another; each then answers "ok".
 */
export default {
  async fetch(request: Request, env: { TARGET: string }): Promise<Response> {
    const query = new URL(request.url).searchParams;
    const timers = Number(query.get("timers") ?? "0"), ms = Number(query.get("ms") ?? "1");
    for (let i = 0; i < timers; i++) await new Promise((resolve) => setTimeout(resolve, ms));
    const fetches = Number(query.get("fetches") ?? "0");
    for (let i = 0; i < fetches; i++) await (await fetch(env.TARGET)).arrayBuffer();
    return new Response("ok");
  },
};
