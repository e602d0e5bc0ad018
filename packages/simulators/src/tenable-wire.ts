import { tenableFindingKey, tenableFindingVersion } from "@vulnsub/shared";
import type { ServedVersion } from "./common.ts";
import type { SimFinding } from "./tenable-dataset.ts";
import { SEVERITY_NAMES } from "./tenable-catalog.ts";

/**
 * Turns a simulated finding into the object a vulns export chunk carries,
 * in the current vendor field set. Attributes without a value are left
 * out, as Tenable documents for export chunks.
 */
export function toWireFinding(finding: SimFinding): Record<string, unknown> {
  const { plugin, service } = finding;
  const wire: Record<string, unknown> = {
    asset: wireAsset(finding),
    output: outputOf(finding),
    plugin: wirePlugin(finding),
    port: compact({
      port: service.port,
      protocol: service.protocol,
      service: service.service,
    }),
    scan: {
      schedule_uuid: finding.asset.scheduleUuid,
      started_at: iso(finding.lastFoundMs - 300_000),
      completed_at: iso(finding.lastFoundMs),
      last_scan_target: finding.asset.ipv4 ?? finding.asset.ipv6,
      uuid: finding.asset.scanUuid,
    },
    severity: SEVERITY_NAMES[plugin.severityId],
    severity_id: plugin.severityId,
    severity_default_id: plugin.severityId,
    severity_modification_type: "NONE",
    first_found: iso(finding.firstFoundMs),
    last_found: iso(finding.lastFoundMs),
    last_fixed: finding.lastFixedMs === null ? null : iso(finding.lastFixedMs),
    state: finding.state,
    indexed: iso(finding.indexedMs),
    source: finding.source,
    finding_id: finding.findingId,
    resurfaced_date:
      finding.resurfacedMs === null ? null : iso(finding.resurfacedMs),
  };
  return compact(wire);
}

/** Serializes one finding for a chunk body. */
export function serializeFinding(finding: SimFinding): string {
  return JSON.stringify(toWireFinding(finding));
}

/**
 * Returns the identity and version of a finding as the poller computes
 * them from the wire object: key from finding_id or the four-part tuple,
 * version from the state, last_found and last_fixed texts.
 */
export function servedVersionOf(finding: SimFinding): ServedVersion {
  return {
    findingKey: tenableFindingKey({
      findingId: finding.findingId,
      assetUuid: finding.asset.uuid,
      pluginId: finding.plugin.id,
      port: finding.service.port,
      protocol: finding.service.protocol,
    }),
    version: tenableFindingVersion({
      state: finding.state,
      lastFound: iso(finding.lastFoundMs),
      lastFixed: finding.lastFixedMs === null ? null : iso(finding.lastFixedMs),
    }),
  };
}

function wireAsset(finding: SimFinding): Record<string, unknown> {
  const asset = finding.asset;
  return compact({
    bios_uuid: asset.biosUuid,
    device_type: asset.deviceType,
    fqdn: asset.fqdn,
    hostname: asset.hostname,
    uuid: asset.uuid,
    ipv4: asset.ipv4,
    ipv6: asset.ipv6,
    mac_address: asset.macAddress,
    netbios_name: asset.netbiosName,
    operating_system: asset.operatingSystem,
    agent_uuid: asset.agentUuid,
    network_id: asset.networkId,
    tracked: true,
  });
}

function wirePlugin(finding: SimFinding): Record<string, unknown> {
  const plugin = finding.plugin;
  return compact({
    cve: plugin.cves,
    cvss_base_score: plugin.cvssBaseScore,
    cvss3_base_score: plugin.cvss3BaseScore,
    description: plugin.description,
    exploit_available: plugin.exploitAvailable,
    family: plugin.family,
    family_id: plugin.familyId,
    has_patch: plugin.hasPatch,
    id: plugin.id,
    modification_date: plugin.modificationDate,
    name: plugin.name,
    publication_date: plugin.publicationDate,
    risk_factor: plugin.riskFactor,
    see_also: plugin.seeAlso,
    solution: plugin.solution,
    synopsis: plugin.synopsis,
    type: plugin.type,
    version: "1.12",
  });
}

function outputOf(finding: SimFinding): string {
  const port = finding.service.port;
  const line =
    `\n  Plugin ${finding.plugin.id} on port ${port}: ` +
    `${finding.plugin.name}\n`;
  if (finding.largeOutputBytes === 0) return line;

  // A huge output, such as a full software inventory, built on demand so
  // the dataset does not keep it in memory.
  const row = `  package-${finding.plugin.id}-${port} : installed\n`;
  return line + row.repeat(Math.ceil(finding.largeOutputBytes / row.length));
}

// Drops null, undefined and empty-array attributes.
function compact(object: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === null || value === undefined) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    result[key] = value;
  }
  return result;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
