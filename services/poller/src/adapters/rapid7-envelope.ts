import { isIPv4, isIPv6 } from "node:net";
import {
  rapid7FindingKey,
  rapid7FindingVersion,
  type FindingEnvelope,
  type FindingState,
  type Severity,
} from "@vulnsub/shared";
import type { AdapterRecord } from "../adapter.ts";
import type {
  Rapid7Asset,
  Rapid7Definition,
  Rapid7Finding,
  Rapid7List,
} from "./rapid7-parse.ts";

/**
 * Turns one (asset, finding) of a Rapid7 v4 asset page into a log record.
 *
 * Mapping choices, where the API leaves room:
 * - state: `remediated` is fixed; a finding in `new` with `reintroduced`
 *   set is reopened; every other finding is open.
 * - severity: from the definition, else from the finding, else info.
 *   critical is critical, severe is high, moderate is medium, low is low,
 *   anything else (none, informational, unknown) is info.
 * - hostname is `host_name`. v4 has no separate FQDN field, so fqdn is
 *   `host_name` too when it contains a dot and is not an IP address.
 * - ipv4 and ipv6 come from `ip` and any `addresses[].ip`.
 * - lastFixed is null unless the finding is remediated; then it is the
 *   asset's `last_scan_end` (the scan that no longer found it, or a later
 *   one), else the cycle's currentTime, else null.
 * - Timestamps the schema would reject are written as null; the vendor's
 *   text stays in `raw`.
 */
export interface Rapid7RecordInput {
  asset: Rapid7Asset;
  finding: Rapid7Finding;
  list: Rapid7List;
  /** Null when Rapid7 returned no definition for the id. */
  definition: Rapid7Definition | null;
  source: string;
  /** When the page was fetched (ISO 8601). */
  observedAt: string;
  /** currentTime of the search, if the cycle sent one (ISO 8601). */
  currentTime: string | null;
}

export function buildRapid7Record(input: Rapid7RecordInput): AdapterRecord {
  const { asset, finding, list, definition } = input;
  const state = rapid7State(list, finding);
  const findingKey = rapid7FindingKey({
    assetId: asset.id,
    vulnerabilityId: finding.vulnerabilityId,
    key: finding.key,
    port: finding.port,
    protocol: finding.protocol,
  });
  const version = rapid7FindingVersion({
    state,
    status: finding.status,
    lastFound: finding.lastFound,
    reintroduced: finding.reintroduced,
  });
  const vendorSeverity = definition?.severity ?? finding.severity ?? null;

  const envelope: FindingEnvelope = {
    schemaVersion: 1,
    vendor: "rapid7",
    source: input.source,
    findingKey,
    version,
    observedAt: input.observedAt,
    asset: {
      id: asset.id,
      hostname: asset.hostName,
      fqdn: fqdnOf(asset.hostName),
      ipv4: unique(asset.addresses.filter((address) => isIPv4(address))),
      ipv6: unique(asset.addresses.filter((address) => isIPv6(address))),
    },
    vulnerability: {
      id: finding.vulnerabilityId,
      title: definition?.title ?? null,
      cves: definition?.cves ?? [],
      severity: mapRapid7Severity(vendorSeverity),
      vendorSeverity,
    },
    state,
    vendorState: finding.status,
    firstSeen: timestampOrNull(finding.firstFound),
    lastSeen: timestampOrNull(finding.lastFound),
    lastFixed:
      state === "fixed"
        ? (timestampOrNull(asset.lastScanEnd) ??
          timestampOrNull(input.currentTime))
        : null,
    port: finding.port !== null && isPort(finding.port) ? finding.port : null,
    protocol: finding.protocol,
    raw: { asset: asset.raw, finding: finding.raw, list },
  };
  return { findingKey, version, json: JSON.stringify(envelope) };
}

/** Returns the normalised state of a finding served in `list`. */
export function rapid7State(
  list: Rapid7List,
  finding: Pick<Rapid7Finding, "reintroduced">,
): FindingState {
  if (list === "remediated") return "fixed";
  if (list === "new" && finding.reintroduced) return "reopened";
  return "open";
}

/** Maps an InsightVM severity word (any case) to the common scale. */
export function mapRapid7Severity(severity: string | null): Severity {
  switch (severity?.trim().toLowerCase()) {
    case "critical":
      return "critical";
    case "severe":
      return "high";
    case "moderate":
      return "medium";
    case "low":
      return "low";
    default:
      return "info";
  }
}

function fqdnOf(hostName: string | null): string | null {
  if (!hostName || !hostName.includes(".")) return null;
  if (isIPv4(hostName) || isIPv6(hostName)) return null;
  return hostName;
}

// RFC 3339 date-time, the `date-time` format of the log schema.
const DATE_TIME =
  /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function timestampOrNull(text: string | null): string | null {
  if (text === null || !DATE_TIME.test(text)) return null;
  return Number.isFinite(Date.parse(text)) ? text : null;
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
