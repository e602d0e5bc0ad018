// The demo's closing report: a table per vendor from the pollers' events
// and the simulators' counters, and summary.json for tools and tests.
import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Vendor } from "@vulnsub/shared";
import type { SimulatorCounters } from "@vulnsub/simulators";
import type { VendorProgress } from "./demo-progress.ts";
import type { GroundTruthSet } from "./ground-truth.ts";
import type { VerifyLogResult } from "../verify-log.ts";

export interface VendorSummary {
  vendor: Vendor;
  progress: VendorProgress;
  /** Null when the simulator could not be asked (it had died). */
  counters: SimulatorCounters | null;
  served: number | null;
}

export interface DemoSummary {
  dataDir: string;
  logPath: string;
  durationMs: number;
  completed: boolean;
  vendors: VendorSummary[];
  verify: VerifyLogResult | null;
  ok: boolean;
}

/** Formats the summary table and file locations. */
export function formatSummary(summary: DemoSummary, cwd: string): string[] {
  const header = [
    "vendor",
    "written",
    "duplicates",
    "pages",
    "served",
    "requests",
    "quota",
    "max/window",
    "exceeded",
    "quota waits",
  ];
  const rows = summary.vendors.map((v) => {
    const quota = v.counters?.quota;
    const na = "n/a";
    return [
      v.vendor,
      String(v.progress.written),
      String(v.progress.duplicates),
      String(v.progress.pages),
      v.served === null ? na : String(v.served),
      quota ? String(quota.requests) : na,
      quota ? `${quota.limit} per ${formatSeconds(quota.windowMs)}` : na,
      quota ? String(quota.maxInWindow) : na,
      quota ? String(quota.windowsExceeded) : na,
      `${v.progress.quotaWaits} (${formatSeconds(v.progress.quotaWaitMs)})`,
    ];
  });

  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i]!.length)),
  );
  const format = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const show = (path: string) => relative(cwd, path) || ".";

  return [
    "",
    `summary after ${formatSeconds(summary.durationMs)}:`,
    format(header),
    ...rows.map(format),
    "",
    `findings log:  ${show(summary.logPath)}`,
    `process logs:  ${show(join(summary.dataDir, "logs"))}`,
    `summary file:  ${show(join(summary.dataDir, "summary.json"))}`,
  ];
}

/** Writes summary.json and ground-truth.json into the data folder. */
export function writeSummaryFiles(
  summary: DemoSummary,
  groundTruth: readonly GroundTruthSet[],
) {
  writeFileSync(
    join(summary.dataDir, "summary.json"),
    `${JSON.stringify(summary, null, 2)}\n`,
  );
  writeFileSync(
    join(summary.dataDir, "ground-truth.json"),
    `${JSON.stringify(groundTruth)}\n`,
  );
}

export function formatSeconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds} s`;
}
