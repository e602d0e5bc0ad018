// The end-of-run checks of the chaos suite. Each is a count that must be 0:
//
// - lost: versions the simulators served in complete, fault-free responses
//   that are not in the findings log;
// - duplicated: log lines repeating a (vendor, source, findingKey, version)
//   of an earlier line;
// - invalid: lines that are not JSON or fail schema/finding.schema.json
//   (a torn last line included);
// - unexpected: lines whose identity no simulator ever served;
// - quota: requests that arrived while a simulator's rolling window already
//   held its quota;
// - secrets: occurrences of a configured credential in any captured
//   stdout or stderr or in any file of the data, state and Redis dirs.
import type { Vendor } from "@vulnsub/shared";
import type { SimulatorCounters } from "@vulnsub/simulators";
import {
  verifyLog,
  type GroundTruthSet,
  type VerifyLogResult,
} from "../verify-log.ts";
import { scanForSecrets, type SecretScan } from "./secret-scan.ts";

export interface ChaosCheckInput {
  logPath: string;
  groundTruth: readonly GroundTruthSet[];
  counters: ReadonlyMap<Vendor, SimulatorCounters>;
  /** Folders whose files the secrets scan reads. */
  scanDirs: readonly string[];
  secretForms: readonly string[];
}

export interface FaultFigures {
  total: number;
  byKind: Record<string, number>;
  /** Tenable chunks that expired before the poller fetched them. */
  chunksExpired: number;
  /** Tenable exports the simulator made end in ERROR. */
  exportsFailed: number;
}

export interface ChaosChecks {
  verify: VerifyLogResult;
  lost: number;
  duplicated: number;
  invalid: number;
  unexpected: number;
  /** Requests over quota, summed over the simulators. */
  quotaExceeded: number;
  quotaByVendor: Partial<Record<Vendor, SimulatorCounters["quota"]>>;
  secrets: SecretScan;
  faults: FaultFigures;
  passed: boolean;
}

/** Runs every check; the findings log must no longer be written. */
export async function runChecks(input: ChaosCheckInput): Promise<ChaosChecks> {
  const verify = await verifyLog({
    logPath: input.logPath,
    groundTruth: input.groundTruth,
  });
  const quotaByVendor: ChaosChecks["quotaByVendor"] = {};
  let quotaExceeded = 0;
  for (const [vendor, counters] of input.counters) {
    quotaByVendor[vendor] = counters.quota;
    quotaExceeded += counters.quota.windowsExceeded;
  }
  const secrets = scanForSecrets(input.scanDirs, input.secretForms);

  const lost = verify.lost?.count ?? 0;
  const duplicated = verify.duplicated.count;
  const invalid = verify.invalid.count;
  const unexpected = verify.unexpected?.count ?? 0;
  const passed =
    lost === 0 &&
    duplicated === 0 &&
    invalid === 0 &&
    unexpected === 0 &&
    quotaExceeded === 0 &&
    secrets.occurrences === 0;
  return {
    verify,
    lost,
    duplicated,
    invalid,
    unexpected,
    quotaExceeded,
    quotaByVendor,
    secrets,
    faults: faultFigures(input.counters),
    passed,
  };
}

function faultFigures(counters: ReadonlyMap<Vendor, SimulatorCounters>): FaultFigures {
  const figures: FaultFigures = {
    total: 0,
    byKind: {},
    chunksExpired: 0,
    exportsFailed: 0,
  };
  for (const [vendor, vendorCounters] of counters) {
    for (const [kind, count] of Object.entries(vendorCounters.faultsInjected)) {
      figures.byKind[`${vendor}.${kind}`] = count;
      figures.total += count;
    }
    figures.chunksExpired += exportCount(vendorCounters, "chunksExpired");
    figures.exportsFailed += exportCount(vendorCounters, "markedToFail");
  }
  return figures;
}

/** Tenable's counters carry an `exports` block; the others do not. */
function exportCount(counters: SimulatorCounters, name: string): number {
  const exports = (counters as { exports?: Record<string, unknown> }).exports;
  const value = exports?.[name];
  return typeof value === "number" ? value : 0;
}
