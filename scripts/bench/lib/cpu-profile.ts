// Summarises a .cpuprofile file (Chrome DevTools format, as `bun
// --cpu-prof` writes it): the share of samples per function and per
// source file, largest first. The benches print it when run with
// --cpu-prof to show what bounds a figure.
//
// Shares count samples, not time deltas: a delta covers the time since the
// previous sample, idle time included, so it would charge waiting to the
// next function sampled.
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";

/** Samples whose top frame is one function or file. */
export interface ProfileEntry {
  label: string;
  samples: number;
  /** Fraction of all samples, 0-1. */
  share: number;
}

export interface ProfileSummary {
  samples: number;
  /** From the profile's start to its end, idle time included. */
  durationMs: number;
  functions: ProfileEntry[];
  files: ProfileEntry[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** Reads a .cpuprofile and returns its `top` functions and files. */
export function summarizeCpuProfile(path: string, top: number): ProfileSummary {
  const profile = parseCpuProfile(readFileSync(path, "utf8"), path);
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();

  for (const id of profile.samples) {
    const frame = nodes.get(id)?.callFrame;
    const file = frame?.url ? shortenUrl(frame.url) : "(native code)";
    const name = frame?.functionName || "(anonymous)";
    // A native function is named with its nearest JavaScript caller, so
    // "copy" in grpc-js and "copy" in the flusher stay apart.
    const label = frame?.url
      ? `${name} ${file}:${frame.lineNumber + 1}`
      : `${name} <- ${describeCaller(id, nodes, parents)}`;
    byFunction.set(label, (byFunction.get(label) ?? 0) + 1);
    byFile.set(file, (byFile.get(file) ?? 0) + 1);
  }

  const total = profile.samples.length;
  return {
    samples: total,
    durationMs: (profile.endTime - profile.startTime) / 1000,
    functions: rank(byFunction, total, top),
    files: rank(byFile, total, top),
  };
}

/** Prints the summary of every .cpuprofile in `dir`. */
export function printCpuProfiles(dir: string, top = 12): void {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  for (const file of files.sort()) {
    const summary = summarizeCpuProfile(join(dir, file), top);
    const seconds = (summary.durationMs / 1000).toFixed(1);
    console.log(
      `\ncpu profile ${basename(file)}: ${summary.samples} samples in ` +
        `${seconds} s (${join(dir, file)})`,
    );
    console.log("  samples by function (self):");
    for (const entry of summary.functions) console.log(formatEntry(entry));
    console.log("  samples by file (self):");
    for (const entry of summary.files) console.log(formatEntry(entry));
  }
}

function parseCpuProfile(text: string, path: string): CpuProfile {
  const value: unknown = JSON.parse(text);
  const record = value as Partial<CpuProfile> | null;
  if (
    !record ||
    !Array.isArray(record.nodes) ||
    !Array.isArray(record.samples) ||
    typeof record.startTime !== "number" ||
    typeof record.endTime !== "number"
  ) {
    throw new Error(`${path}: not a cpuprofile (nodes, samples, times)`);
  }
  return record as CpuProfile;
}

function describeCaller(
  id: number,
  nodes: Map<number, ProfileNode>,
  parents: Map<number, number>,
): string {
  for (let at = parents.get(id); at !== undefined; at = parents.get(at)) {
    const frame = nodes.get(at)?.callFrame;
    if (!frame?.url) continue;
    const name = frame.functionName || "(anonymous)";
    return `${name} ${shortenUrl(frame.url)}:${frame.lineNumber + 1}`;
  }
  return "(no JavaScript caller)";
}

function rank(counts: Map<string, number>, total: number, top: number) {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([label, samples]) => ({
      label,
      samples,
      share: total > 0 ? samples / total : 0,
    }));
}

function formatEntry(entry: ProfileEntry): string {
  const percent = `${(entry.share * 100).toFixed(1)} %`.padStart(7);
  return `  ${percent}  ${entry.label}`;
}

// Keeps the part of a file URL after node_modules/ or the repository root.
function shortenUrl(url: string): string {
  const path = url.replace(/^file:\/\//, "");
  const modules = path.lastIndexOf("node_modules/");
  if (modules >= 0) return path.slice(modules + "node_modules/".length);
  const root = /\/(services|packages|scripts)\//.exec(path);
  return root ? path.slice(root.index + 1) : path;
}
