/**
 * Preloaded into a process under study (`deno run --preload bench/lib/memory-probe.ts …`) by bench/rss-study.ts:
 * every 50 ms it reads its own VmRSS and, at each new peak (1 MiB past the last), records where the memory is —
 * V8 heap spaces (physical sizes), V8's malloced and external memory, Deno.memoryUsage(), and /proc/self/smaps
 * grouped into file-backed code, WebAssembly memories (the huge guarded reservations), the V8 heap and other
 * anonymous memory — and writes that record to AUXOT_MEMORY_PROBE (a file path). Costs a little CPU, so the
 * study's A/B rounds run without it.
 */
import v8 from "node:v8";

const out = Deno.env.get("AUXOT_MEMORY_PROBE");
const KIB = 1024;

function vmRss(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) * KIB : 0;
}

/** Resident bytes by kind of mapping, from /proc/self/smaps. */
function smapsGroups(): { groups: Record<string, number>; largestAnon: string[] } {
  const groups: Record<string, number> = {};
  const anon: [number, string][] = [];
  let name = "";
  let size = 0;
  let head: RegExpExecArray | null = null;
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const next = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (next) {
      head = next;
      size = parseInt(next[2], 16) - parseInt(next[1], 16);
      name = next[4];
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const bytes = Number(rss[1]) * KIB;
    if (bytes === 0) continue;
    let group: string;
    if (name.startsWith("/")) group = `file ${name.split("/").pop()}`;
    else if (name) group = name; // [heap], [stack], [anon:…]
    else if (size >= 4 * 1024 ** 3) group = "anon ≥4 GiB reservation (WebAssembly memory)";
    else group = "anon";
    groups[group] = (groups[group] ?? 0) + bytes;
    if (!name && head) anon.push([bytes, `${head[1]} ${head[3]} size ${size >> 10} kB rss ${bytes >> 10} kB`]);
  }
  const largestAnon = anon.sort((a, b) => b[0] - a[0]).slice(0, 12).map(([, text]) => text);
  return { groups, largestAnon };
}

function record() {
  const heap = v8.getHeapStatistics();
  const spaces = Object.fromEntries(
    v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]),
  );
  return {
    vmRss: vmRss(),
    /** Open descriptors (mostly sockets: callers' and the worker's connections). */
    fds: [...Deno.readDirSync("/proc/self/fd")].length,
    memoryUsage: Deno.memoryUsage(),
    heap: {
      total_physical_size: heap.total_physical_size,
      used_heap_size: heap.used_heap_size,
      malloced_memory: heap.malloced_memory,
      peak_malloced_memory: heap.peak_malloced_memory,
      external_memory: heap.external_memory,
    },
    spaces,
    ...(({ groups, largestAnon }) => ({ smaps: groups, largestAnon }))(smapsGroups()),
    smapsRollup: Deno.readTextFileSync("/proc/self/smaps_rollup"),
  };
}

if (out) {
  let peak = 0;
  const timer = setInterval(() => {
    const rss = vmRss();
    if (rss < peak + KIB * KIB) return;
    peak = rss;
    Deno.writeTextFileSync(out, JSON.stringify({ at: Date.now(), ...record() }));
  }, 50);
  Deno.unrefTimer(timer);
}

/** SIGUSR2 writes a heap snapshot next to the probe's file (the process pauses while it is written). */
if (out) {
  let n = 0;
  Deno.addSignalListener("SIGUSR2", () => {
    const file = `${out}.${++n}.heapsnapshot`;
    v8.writeHeapSnapshot(file);
  });
}
