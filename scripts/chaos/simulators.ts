// The three vendor simulators of a chaos run, in this process: the harness
// switches their faults, advances their epochs and reads their ground
// truth and quota counters directly, with no admin HTTP calls.
import type { Vendor } from "@vulnsub/shared";
import {
  startQualysSimulator,
  startRapid7Simulator,
  startTenableSimulator,
  type SimulatorHandle,
} from "@vulnsub/simulators";
import type { ChaosOptions } from "./options.ts";
import type { ChaosCredentials } from "./plan.ts";

export type SimulatorSet = ReadonlyMap<Vendor, SimulatorHandle>;

/** Starts one simulator per vendor with the run's dataset and credentials. */
export async function startChaosSimulators(
  options: ChaosOptions,
  credentials: ChaosCredentials,
): Promise<SimulatorSet> {
  const dataset = {
    seed: options.seed,
    assets: options.assets,
    findingsPerAsset: options.findingsPerAsset,
    rateLimit: options.quota,
  };
  const started: SimulatorHandle[] = [];
  try {
    started.push(
      await startQualysSimulator({
        ...dataset,
        credentials: {
          username: credentials.qualysUsername,
          password: credentials.qualysPassword,
        },
      }),
    );
    started.push(
      await startRapid7Simulator({ ...dataset, apiKey: credentials.rapid7ApiKey }),
    );
    started.push(
      await startTenableSimulator({
        ...dataset,
        chunkTtlMs: options.chunkTtlMs,
        credentials: {
          accessKey: credentials.tenableAccessKey,
          secretKey: credentials.tenableSecretKey,
        },
      }),
    );
  } catch (error) {
    await Promise.all(started.map((simulator) => simulator.stop()));
    throw error;
  }
  return new Map(started.map((simulator) => [simulator.vendor, simulator]));
}

/** Returns the environment variables that carry a vendor's credentials. */
export function credentialEnv(
  vendor: Vendor,
  credentials: ChaosCredentials,
): Record<string, string> {
  switch (vendor) {
    case "qualys":
      return {
        QUALYS_USERNAME: credentials.qualysUsername,
        QUALYS_PASSWORD: credentials.qualysPassword,
      };
    case "rapid7":
      return { RAPID7_API_KEY: credentials.rapid7ApiKey };
    case "tenable":
      return {
        TENABLE_ACCESS_KEY: credentials.tenableAccessKey,
        TENABLE_SECRET_KEY: credentials.tenableSecretKey,
      };
  }
}

/**
 * Every form of a credential that must never appear in output or files:
 * each secret as is, and the Qualys HTTP Basic value in base64.
 */
export function secretForms(credentials: ChaosCredentials): string[] {
  const basic = Buffer.from(
    `${credentials.qualysUsername}:${credentials.qualysPassword}`,
  ).toString("base64");
  return [
    credentials.qualysPassword,
    basic,
    credentials.rapid7ApiKey,
    credentials.tenableAccessKey,
    credentials.tenableSecretKey,
  ];
}
