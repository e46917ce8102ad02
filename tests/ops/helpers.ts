/**
 * Helpers for the operations tests: a router served on loopback that also exposes its context (metrics, store),
 * and a Prometheus text-format reader built on a real parser (parse-prometheus-text-format, a port of the
 * Prometheus client's parser) plus the exposition format's rules it does not check itself.
 */
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { createApp } from "../../src/app.ts";
import type { Env } from "../../src/config.ts";
import { loadConfig } from "../../src/config.ts";
import type { RouterContext } from "../../src/dispatch/context.ts";
import { createLogger } from "../../src/log.ts";
import { EmbeddedStore } from "../../src/store/embedded.ts";
import type { JobStore } from "../../src/store/store.ts";
import { TEST_ENV, type TestKeys, testKeys } from "../helpers/router.ts";

export interface OpsRouter {
  url: string;
  keys: TestKeys;
  ctx: RouterContext;
  store: JobStore;
  logs: string[];
  close(): Promise<void>;
}

/**
 * `store`: a store of the caller's (closed by the caller), e.g. one UpstashStore per router to play several
 * instances; `flushIntervalMs`: how often shared counters are flushed (the router's default is 20 s).
 */
export async function startOpsRouter(
  env: Env = {},
  options: { store?: JobStore; flushIntervalMs?: number } = {},
): Promise<OpsRouter> {
  const keys = await testKeys();
  const config = loadConfig({ ...TEST_ENV, AUXOT_LOG_LEVEL: "info", ...keys.env, ...env });
  const logs: string[] = [];
  const store = options.store ?? new EmbeddedStore({ leaseMs: config.leaseMs });
  const app = createApp({ config, store, log: createLogger(config.logLevel, (line) => logs.push(line)) });
  if (options.flushIntervalMs) {
    app.ctx.metrics.attach(store, { background: app.ctx.background, flushIntervalMs: options.flushIntervalMs });
  }
  const controller = new AbortController();
  const sweeper = setInterval(() => app.ctx.reapSoon(), 200);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
    (request, info) => app.fetch(request, { client: (info.remoteAddr as Deno.NetAddr).hostname }),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    keys,
    ctx: app.ctx,
    store,
    logs,
    close: async () => {
      clearInterval(sweeper);
      controller.abort();
      await server.finished;
      if (!options.store) await store.close();
    },
  };
}

export interface MetricFamily {
  name: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  help: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

const parse = parsePrometheusTextFormat as unknown as (text: string) => MetricFamily[];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Parses an exposition strictly: the parser throws on malformed lines; names, types and values are checked too. */
export function parseMetrics(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  for (const family of parse(text)) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid metric name ${family.name}`);
    if (families.has(family.name)) throw new Error(`metric family ${family.name} appears twice`);
    if (family.type === "UNTYPED") throw new Error(`${family.name} has no TYPE line`);
    if (!family.help) throw new Error(`${family.name} has no HELP line`);
    const seen = new Set<string>();
    for (const m of family.metrics) {
      const id = JSON.stringify(Object.entries(m.labels ?? {}).sort());
      if (seen.has(id)) throw new Error(`${family.name} repeats the series ${id}`);
      seen.add(id);
      for (const v of [m.value, m.count, m.sum, ...Object.values(m.buckets ?? {})]) {
        if (v !== undefined && Number.isNaN(Number(v))) throw new Error(`${family.name}: ${v} is not a number`);
      }
    }
    families.set(family.name, family);
  }
  return families;
}

/** A counter's or gauge's value for exactly these labels (0 when the series is absent). */
export function sampleValue(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.get(name);
  if (!family) throw new Error(`no metric family ${name}`);
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const m = family.metrics.find((s) => JSON.stringify(Object.entries(s.labels ?? {}).sort()) === wanted);
  return m?.value === undefined ? 0 : Number(m.value);
}

/** A histogram's observation count. */
export function histogramCount(families: Map<string, MetricFamily>, name: string): number {
  const family = families.get(name);
  if (!family || family.type !== "HISTOGRAM") throw new Error(`no histogram ${name}`);
  return Number(family.metrics[0]?.count ?? 0);
}

export async function getJson(url: string, key?: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: response.status, body: await response.json() };
}
