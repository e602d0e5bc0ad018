// Peak RSS and CPU time of child processes, read from /proc (Linux only).
//
// - Peak RSS is VmHWM in /proc/<pid>/status: the kernel's high-water mark
//   of the resident set, so a short peak between two samples still counts.
// - CPU time is utime + stime in /proc/<pid>/stat, in clock ticks
//   (getconf CLK_TCK, 100 on common kernels), converted to seconds.
//
// Both vanish when the process exits, so a bench reads them while the
// process still runs, and the sampler keeps the last reading of each.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** One reading of a process. */
export interface ProcessStats {
  rssBytes: number;
  peakRssBytes: number;
  /** User plus system CPU time since the process started. */
  cpuSeconds: number;
}

/** Periodic readings of a set of processes. */
export interface ProcessSampler {
  /** Adds a process to sample, under a name for the report. */
  watch(name: string, pid: number): void;
  /** Reads every watched process now and returns the fresh readings. */
  sampleNow(): Map<string, ProcessStats>;
  /** The last successful reading of each process. */
  latest(): Map<string, ProcessStats>;
  stop(): void;
}

const clockTicksPerSecond = readClockTicks();

/**
 * Reads VmRSS, VmHWM and CPU time of `pid`. Returns null when the process
 * is gone or is a zombie (its status no longer lists VmHWM).
 */
export function readProcessStats(pid: number): ProcessStats | null {
  let status: string;
  let stat: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const peakKiB = readStatusKiB(status, "VmHWM");
  const rssKiB = readStatusKiB(status, "VmRSS");
  const cpuTicks = readCpuTicks(stat);
  if (peakKiB === null || rssKiB === null || cpuTicks === null) return null;

  return {
    rssBytes: rssKiB * 1024,
    peakRssBytes: peakKiB * 1024,
    cpuSeconds: cpuTicks / clockTicksPerSecond,
  };
}

/** Starts sampling every `intervalMs` until stop(). */
export function createProcessSampler(intervalMs: number): ProcessSampler {
  const pids = new Map<string, number>();
  const last = new Map<string, ProcessStats>();

  const sampleNow = () => {
    const fresh = new Map<string, ProcessStats>();
    for (const [name, pid] of pids) {
      const stats = readProcessStats(pid);
      if (!stats) continue;
      last.set(name, stats);
      fresh.set(name, stats);
    }
    return fresh;
  };
  const timer = setInterval(sampleNow, intervalMs);

  return {
    watch(name, pid) {
      pids.set(name, pid);
      sampleNow();
    },
    sampleNow,
    latest: () => new Map(last),
    stop: () => clearInterval(timer),
  };
}

/**
 * Bytes that local TCP clients of `port` have taken from their sockets:
 * bytes_received minus the unread Recv-Q, summed over the established
 * connections to that port (from `ss -tin`). Null when ss fails.
 */
export function readTcpBytesTaken(port: number): number | null {
  const result = spawnSync(
    "ss",
    ["-tinH", "state", "established", `( dport = :${port} )`],
    { encoding: "utf8" },
  );
  if (result.status !== 0) return null;

  let total = 0;
  // Each connection is a line "Recv-Q Send-Q local peer" followed by an
  // indented line of tcp_info fields such as bytes_received:123.
  const lines = result.stdout.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const received = /bytes_received:(\d+)/.exec(lines[i] ?? "");
    if (!received) continue;
    const queued = Number((lines[i - 1] ?? "").trim().split(/\s+/)[0]);
    total += Number(received[1]) - (Number.isFinite(queued) ? queued : 0);
  }
  return total;
}

function readStatusKiB(status: string, field: string): number | null {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  return match ? Number(match[1]) : null;
}

// The command name (field 2) is in parentheses and may contain spaces, so
// fields are counted from the last ")". utime and stime are fields 14, 15.
function readCpuTicks(stat: string): number | null {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);
  if (!Number.isFinite(userTicks) || !Number.isFinite(systemTicks)) {
    return null;
  }
  return userTicks + systemTicks;
}

function readClockTicks(): number {
  const result = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const ticks = Number(result.stdout?.trim());
  return result.status === 0 && ticks > 0 ? ticks : 100;
}
