// The machine a benchmark ran on, printed before its figures so a reader
// can compare runs: CPU model, cores, memory, the disk under the data
// folder, kernel and Bun version.
import { spawnSync } from "node:child_process";
import { readFileSync, statfsSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";

/** Facts about the host, each a short printable text. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryBytes: number;
  /** Device, filesystem and free space of the folder the bench writes to. */
  disk: string;
  kernel: string;
  bun: string;
}

/** Collects the machine facts; `dataDir` selects the disk described. */
export function describeMachine(dataDir: string): MachineInfo {
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryBytes: totalmem(),
    disk: describeDisk(dataDir),
    kernel: `Linux ${release()}`,
    bun: Bun.version,
  };
}

/** Prints the machine facts, the disk and the load average, one line each. */
export function printMachine(dataDir: string, smoke: boolean): void {
  const machine = describeMachine(dataDir);
  const memoryGiB = (machine.memoryBytes / 2 ** 30).toFixed(1);
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${memoryGiB} GiB ` +
      `memory, ${machine.kernel}, bun ${machine.bun}`,
  );
  console.log(`disk: ${machine.disk}`);
  // Other work on the host skews every figure; the load shows how much.
  const load = loadavg().map((value) => value.toFixed(2));
  console.log(`load average at start: ${load.join(", ")} (1, 5, 15 min)`);
  if (smoke) console.log("smoke run: the figures are not meaningful");
}

/** Bytes free for an unprivileged user on the filesystem of `path`. */
export function freeDiskBytes(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

function describeDisk(path: string): string {
  const mount = findMount(path);
  const freeGiB = (freeDiskBytes(path) / 2 ** 30).toFixed(0);
  if (!mount) return `${path}: ${freeGiB} GiB free`;

  return (
    `${mount.device} (${mount.fsType}, mounted on ${mount.target}) ` +
    `under ${path}: ${freeGiB} GiB free`
  );
}

// Reads the mount that contains `path` from findmnt, which resolves bind
// mounts and overlays the way /proc/mounts alone does not.
function findMount(path: string) {
  const result = spawnSync(
    "findmnt",
    ["-n", "-o", "SOURCE,FSTYPE,TARGET", "-T", path],
    { encoding: "utf8" },
  );
  const fields = result.status === 0 ? result.stdout.trim().split(/\s+/) : [];
  if (fields.length >= 3) {
    return {
      device: fields[0] as string,
      fsType: fields[1] as string,
      target: fields[2] as string,
    };
  }
  return findMountInProc(path);
}

function findMountInProc(path: string) {
  let best: { device: string; fsType: string; target: string } | null = null;
  let text = "";
  try {
    text = readFileSync("/proc/mounts", "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    const [device, target, fsType] = line.split(" ");
    if (!device || !target || !fsType) continue;
    const inside = path === target || path.startsWith(`${target}/`);
    if (!inside && target !== "/") continue;
    if (!best || target.length > best.target.length) {
      best = { device, fsType, target };
    }
  }
  return best;
}
