import { createHash } from "node:crypto";
import type { Vendor } from "./job.ts";

/**
 * The common envelope: one log line per finding version. The JSON Schema in
 * schema/finding.schema.json describes the same shape; change both together.
 */
export interface FindingEnvelope {
  /** Envelope format version; bumped on an incompatible change. */
  schemaVersion: 1;
  vendor: Vendor;
  source: string;
  findingKey: string;
  version: string;
  /** When the poller fetched the finding (ISO 8601 UTC). */
  observedAt: string;
  asset: {
    id: string;
    hostname: string | null;
    fqdn: string | null;
    ipv4: string[];
    ipv6: string[];
  };
  vulnerability: {
    /** Vendor id: Qualys QID, Tenable plugin id, Rapid7 vulnerability id. */
    id: string;
    title: string | null;
    cves: string[];
    severity: Severity;
    /** The vendor's own severity value, as text. */
    vendorSeverity: string | null;
  };
  state: FindingState;
  /** The vendor's own state value (Qualys STATUS, Tenable state, ...). */
  vendorState: string | null;
  firstSeen: string | null;
  lastSeen: string | null;
  lastFixed: string | null;
  port: number | null;
  protocol: string | null;
  /** The vendor's object, unchanged apart from XML turned into JSON. */
  raw: unknown;
}

export type Severity = "info" | "low" | "medium" | "high" | "critical";
export type FindingState = "open" | "fixed" | "reopened";

/**
 * Returns the version of a finding: a 16-hex-digit SHA-256 prefix of the
 * fields whose change makes a new version. Each vendor passes its state and
 * its last-found and last-fixed times (see the per-vendor helpers below), so
 * an identical re-fetch keeps the version.
 */
export function computeFindingVersion(
  fields: readonly (string | number | null | undefined)[],
): string {
  const canonical = JSON.stringify(fields.map((field) => field ?? null));
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/**
 * Qualys key: UNIQUE_VULN_ID when present, else host ID + QID + port +
 * protocol + SSL flag. The IP is never part of it because DHCP reuses IPs.
 */
export function qualysFindingKey(fields: {
  uniqueVulnId?: string | null;
  hostId: string;
  qid: string;
  port?: string | number | null;
  protocol?: string | null;
  ssl?: string | null;
}): string {
  if (fields.uniqueVulnId) return `uvid:${fields.uniqueVulnId}`;
  return [
    `host:${fields.hostId}`,
    `qid:${fields.qid}`,
    `port:${fields.port ?? ""}`,
    `proto:${(fields.protocol ?? "").toLowerCase()}`,
    `ssl:${fields.ssl ?? ""}`,
  ].join("|");
}

/** Qualys version fields: STATUS, LAST_FOUND_DATETIME, LAST_FIXED_DATETIME. */
export function qualysFindingVersion(fields: {
  status: string | null;
  lastFound: string | null;
  lastFixed: string | null;
}): string {
  return computeFindingVersion([
    fields.status,
    fields.lastFound,
    fields.lastFixed,
  ]);
}

/**
 * Tenable key: `finding_id` when present, else asset uuid + plugin id +
 * port + protocol, Tenable's own definition of a finding.
 */
export function tenableFindingKey(fields: {
  findingId?: string | null;
  assetUuid: string;
  pluginId: string | number;
  port?: number | null;
  protocol?: string | null;
}): string {
  if (fields.findingId) return `fid:${fields.findingId}`;
  return [
    `asset:${fields.assetUuid}`,
    `plugin:${fields.pluginId}`,
    `port:${fields.port ?? ""}`,
    `proto:${(fields.protocol ?? "").toLowerCase()}`,
  ].join("|");
}

/** Tenable version fields: state, last_found, last_fixed. */
export function tenableFindingVersion(fields: {
  state: string | null;
  lastFound: string | null;
  lastFixed: string | null;
}): string {
  return computeFindingVersion([
    fields.state,
    fields.lastFound,
    fields.lastFixed,
  ]);
}

/**
 * Rapid7 (Integration API v4) key: asset id + vulnerability id + the
 * instance discriminators key, port and protocol.
 */
export function rapid7FindingKey(fields: {
  assetId: string;
  vulnerabilityId: string;
  key?: string | null;
  port?: number | null;
  protocol?: string | null;
}): string {
  return [
    `asset:${fields.assetId}`,
    `vuln:${fields.vulnerabilityId}`,
    `key:${fields.key ?? ""}`,
    `port:${fields.port ?? ""}`,
    `proto:${(fields.protocol ?? "").toLowerCase()}`,
  ].join("|");
}

/**
 * Rapid7 version fields: the normalised state (the `remediated` list means
 * fixed), the finding's status, last_found and reintroduced.
 */
export function rapid7FindingVersion(fields: {
  state: FindingState;
  status: string | null;
  lastFound: string | null;
  reintroduced: string | null;
}): string {
  return computeFindingVersion([
    fields.state,
    fields.status,
    fields.lastFound,
    fields.reintroduced,
  ]);
}
