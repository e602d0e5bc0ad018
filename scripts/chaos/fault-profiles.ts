// Vendor fault profiles the chaos suite switches between. Each profile is
// a partial FaultSettings applied to every simulator at once; settings a
// vendor does not use (exportErrorRate outside Tenable) do nothing there.
import type { FaultSettings } from "@vulnsub/simulators";

export type FaultProfileName =
  | "calm"
  | "throttle-storm"
  | "server-errors"
  | "slow"
  | "resets"
  | "truncated"
  | "malformed"
  | "export-errors"
  | "mixed";

/** Every profile that injects something, in a fixed order. */
export const FAULT_PROFILE_NAMES: readonly FaultProfileName[] = [
  "throttle-storm",
  "server-errors",
  "slow",
  "resets",
  "truncated",
  "malformed",
  "export-errors",
  "mixed",
];

/**
 * Returns the full settings of a profile. `slowMs` is drawn by the plan:
 * some slow responses end before the pollers' request timeout, others
 * after it.
 */
export function faultSettingsFor(
  profile: FaultProfileName,
  slowMs: number,
): FaultSettings {
  const none: FaultSettings = {
    serverErrorRate: 0,
    slowRate: 0,
    slowMs: 0,
    resetRate: 0,
    truncateRate: 0,
    malformedRate: 0,
    throttleRate: 0,
    exportErrorRate: 0,
  };
  switch (profile) {
    case "calm":
      return none;
    case "throttle-storm":
      // HTTP 429, except Qualys, which returns 409 with code 1960 or 1965.
      return { ...none, throttleRate: 0.4 };
    case "server-errors":
      return { ...none, serverErrorRate: 0.35 };
    case "slow":
      return { ...none, slowRate: 0.4, slowMs };
    case "resets":
      return { ...none, resetRate: 0.35 };
    case "truncated":
      return { ...none, truncateRate: 0.35 };
    case "malformed":
      return { ...none, malformedRate: 0.35 };
    case "export-errors":
      return { ...none, exportErrorRate: 0.6 };
    case "mixed":
      return {
        serverErrorRate: 0.05,
        slowRate: 0.05,
        slowMs,
        resetRate: 0.05,
        truncateRate: 0.05,
        malformedRate: 0.05,
        throttleRate: 0.05,
        exportErrorRate: 0.1,
      };
  }
}
