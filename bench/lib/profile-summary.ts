/**
 * Summaries of V8 CPU profiles and sampling heap profiles of the router: self time by area of the code (auth,
 * store, validation, JSON/SSE, logging, metrics, Deno's HTTP and streams…) and by function, allocations by function,
 * all per request. Used by bench/profile.ts (over HTTP) and bench/router-cpu.ts (in process).
 */

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}
export interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

/** The part of the router a source file belongs to, for the per-area summary. */
function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith("(") ? fn : "(native)";
  const rules: [RegExp, string][] = [
    [/src\/auth\//, "auth"],
    [/src\/store\/(embedded|wakeup)/, "store + wake-ups"],
    [/src\/protocol\//, "validation (protocol)"],
    [/node_modules\/.*zod|\/zod\//, "validation (zod)"],
    [/src\/api\/.*render/, "rendering (JSON/SSE)"],
    [/src\/api\//, "API flavours"],
    [/src\/dispatch\//, "dispatch"],
    [/src\/http\//, "HTTP body/errors"],
    [/src\/log\.ts/, "logging"],
    [/src\/metrics\.ts/, "metrics"],
    [/itty-router/, "routing (itty)"],
    [/src\/app\.ts/, "app"],
    [/ext:deno_http|ext:http|ext:deno_fetch|ext:fetch|ext:deno_web|ext:web|ext:deno_net|ext:net/, "Deno HTTP/streams"],
    [/^ext:|^node:/, "Deno runtime (other)"],
  ];
  for (const [pattern, area] of rules) if (pattern.test(url)) return area;
  return url.includes("node_modules") ? "libraries" : "other";
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(src|node_modules|bench|workers)\//, "$1/");
}

export function summarizeCpu(profile: CpuProfile, requests: number, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") continue;
    total += us;
    const key = `${frame.functionName || "(anonymous)"} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const perRequest = (us: number) => `${(us / 1000 / requests * 1000).toFixed(1)} µs/req`;
  const lines = [`JS-visible busy time ${(total / 1000).toFixed(0)} ms over ${requests} requests`, "", "By area:"];
  for (const [area, us] of [...byArea].sort((a, b) => b[1] - a[1])) {
    lines.push(`  ${(100 * us / total).toFixed(1).padStart(5)}%  ${perRequest(us).padStart(14)}  ${area}`);
  }
  lines.push("", `Top ${top} functions by self time:`);
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${(100 * us / total).toFixed(1).padStart(5)}%  ${perRequest(us).padStart(14)}  ${key}`);
  }
  return lines;
}

export function summarizeHeap(root: HeapNode, requests: number, top: number): string[] {
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode) => {
    const f = node.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    node.children.forEach(walk);
  };
  walk(root);
  const lines = [
    `Sampled allocations: ${(total / 1024 / 1024).toFixed(1)} MB, ${(total / requests / 1024).toFixed(1)} KB/request`,
    `Top ${top} allocating functions:`,
  ];
  for (const [key, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${(bytes / requests).toFixed(0).padStart(7)} B/req  ${key}`);
  }
  return lines;
}

/** A V8 heap snapshot (.heapsnapshot JSON): the parts the summary reads. */
export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Live bytes (self sizes) by object type and constructor name: what a heap holds after a full GC. */
export function summarizeSnapshot(snapshot: HeapSnapshot, top: number): string[] {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const groups = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]];
    const name = type === "object" || type === "closure" || type === "native"
      ? snapshot.strings[snapshot.nodes[i + nameAt]].slice(0, 60)
      : "";
    const key = `${type}${name ? ` ${name}` : ""}`;
    const size = snapshot.nodes[i + sizeAt];
    total += size;
    const group = groups.get(key) ?? { bytes: 0, count: 0 };
    group.bytes += size;
    group.count++;
    groups.set(key, group);
  }
  const mb = (b: number) => (b / 1024 / 1024).toFixed(2).padStart(8);
  return [
    `Live heap (after a full GC): ${mb(total)} MB; by type and constructor:`,
    ...[...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)
      .map(([key, g]) => `${mb(g.bytes)} MB ${String(g.count).padStart(8)}  ${key}`),
  ];
}
