/**
 * A tiny Worker for bench/workerd-wake-probe.ts: requests park on the store's real `Wakeup` and other
 * requests wake them; after its wait, each waiter does its own I/O (a fetch of the `TARGET` binding) and writes its
 * own response. This is what the Upstash store once did on Workers (a caller woken by the worker's post of the same
 * isolate then wrote its SSE stream and sent its next XREAD), until this probe showed it breaking under concurrency.
 *
 * GET /wait?id=X&ms=N    → "<woken> <fetched text>"   (parks on topic X for at most N ms: its own timer)
 * GET /stream?id=X       → three lines, one per wait on topics X-0, X-1, X-2, each followed by its own fetch
 * GET /wake?id=X         → "ok" (notifies topic X)
 * GET /size              → parked waiters
 */
import { Wakeup } from "../../src/store/wakeup.ts";

interface ProbeEnv {
  TARGET: string;
}

const wakeup = new Wakeup("direct");

async function ownFetch(env: ProbeEnv, tag: string): Promise<string> {
  const response = await fetch(`${env.TARGET}/echo?tag=${encodeURIComponent(tag)}`);
  return await response.text();
}

export default {
  async fetch(request: Request, env: ProbeEnv): Promise<Response> {
    const url = new URL(request.url);
    const id = url.searchParams.get("id") ?? "";
    const ms = Number(url.searchParams.get("ms") ?? "10000");
    try {
      switch (url.pathname) {
        case "/wait": {
          const woken = await wakeup.wait([id], ms, request.signal);
          return new Response(`${woken} ${await ownFetch(env, id)}`);
        }
        case "/stream": {
          const bytes = new TextEncoder();
          let round = 0;
          return new Response(
            new ReadableStream<Uint8Array>({
              async pull(controller) {
                const woken = await wakeup.wait([`${id}-${round}`], ms);
                controller.enqueue(bytes.encode(`${woken} ${await ownFetch(env, `${id}-${round}`)}\n`));
                if (++round === 3) controller.close();
              },
            }),
          );
        }
        case "/wake":
          wakeup.notify(id);
          return new Response("ok");
        case "/size":
          return new Response(String(wakeup.size));
        default:
          return new Response("not found", { status: 404 });
      }
    } catch (err) {
      return new Response(`error: ${(err as Error).message}`, { status: 500 });
    }
  },
};
