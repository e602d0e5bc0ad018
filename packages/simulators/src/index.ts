// Public surface of @vulnsub/simulators: one HTTP server per vendor API,
// for tests, the demo and benchmarks. Never point a production poller at
// them.
import type { Vendor } from "@vulnsub/shared";
import type { FaultSettings, ServedVersion } from "./common.ts";
import { startQualysSimulator } from "./qualys.ts";
import { startRapid7Simulator } from "./rapid7.ts";
import { startTenableSimulator } from "./tenable.ts";

export * from "./common.ts";
export {
  startQualysSimulator,
  type QualysSimulatorCounters,
  type QualysSimulatorHandle,
  type QualysSimulatorOptions,
} from "./qualys.ts";
export * from "./rapid7.ts";
export * from "./tenable.ts";

/** Options every vendor simulator accepts. */
export interface SimulatorOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; 0 (the default) picks a free one. */
  port?: number;
  /** Seed of the generated dataset and of the fault draws. */
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Quota the simulator audits; default: the vendor's documented one. */
  rateLimit?: { requests: number; windowMs: number };
  faults?: Partial<FaultSettings>;
}

/** Quota audit of a simulator: every API request it received counts. */
export interface SimulatorQuota {
  limit: number;
  windowMs: number;
  requests: number;
  /** Most requests seen in any rolling window of windowMs. */
  maxInWindow: number;
  /** Requests that arrived while the window already held `limit`. */
  windowsExceeded: number;
}

export interface SimulatorCounters {
  quota: SimulatorQuota;
  requestsByStatus: Record<string, number>;
  faultsInjected: Record<string, number>;
  epoch: number;
  findings: number;
}

/** Interface of every vendor simulator, as the demo and tests use it. */
export interface SimulatorHandle {
  vendor: Vendor;
  /** Base URL without a trailing slash. */
  url: string;
  groundTruth(): ServedVersion[];
  counters(): SimulatorCounters;
  setFaults(update: Partial<FaultSettings>): void;
  advanceEpoch(): number;
  stop(): Promise<void>;
}

/** Starts the simulator of `vendor` with its default credentials. */
export async function startSimulator(
  vendor: Vendor,
  options: SimulatorOptions,
): Promise<SimulatorHandle> {
  switch (vendor) {
    case "qualys":
      return await startQualysSimulator(options);
    case "rapid7":
      return await startRapid7Simulator(options);
    case "tenable":
      return await startTenableSimulator(options);
  }
}

/**
 * Default credentials of each simulator, as the environment variables the
 * poller reads them from.
 */
export const SIMULATOR_CREDENTIALS: Readonly<
  Record<Vendor, Readonly<Record<string, string>>>
> = Object.freeze({
  qualys: { QUALYS_USERNAME: "demo", QUALYS_PASSWORD: "demo-password" },
  rapid7: { RAPID7_API_KEY: "demo-rapid7-key" },
  tenable: {
    TENABLE_ACCESS_KEY: "demo-access",
    TENABLE_SECRET_KEY: "demo-secret",
  },
});
