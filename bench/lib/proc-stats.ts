/**
 * What Linux's /proc says about a process under test: CPU time used (utime + stime, all threads), peak resident
 * memory (VmHWM) and the current one (VmRSS), and finding a process by its command line (workerd is started by
 * a fixture that does not hand out its PID). Linux only, as the benchmark is.
 */

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ); 100 on every Linux this runs on. */
export const TICKS_PER_SECOND = 100;

/** CPU milliseconds the process has used so far, or NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]), stime = Number(fields[12]);
    return ((utime + stime) * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

function statusField(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Peak resident set size in bytes since the process started. */
export function peakRssBytes(pid: number): number {
  return statusField(pid, "VmHWM");
}

export function rssBytes(pid: number): number {
  return statusField(pid, "VmRSS");
}

/** The PID of the process whose command line contains `needle`, or undefined. */
export function findPid(needle: string): number | undefined {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(needle)) return Number(entry.name);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

/** The 1-minute load average and the number of CPUs, to label how busy the machine was. */
export function machineLoad(): { load1: number; cpus: number } {
  let load1 = NaN;
  try {
    load1 = Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    // not Linux
  }
  return { load1, cpus: navigator.hardwareConcurrency };
}

/**
 * CPU milliseconds used so far by every thread of the process, from /proc/<pid>/task/<tid>/schedstat (the
 * scheduler's run time in nanoseconds): /proc/<pid>/stat's 10 ms ticks made a 9-stream row ±1 ms.
 */
export function threadCpuMs(pid: number): number {
  let ns = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`).split(" ")[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}
