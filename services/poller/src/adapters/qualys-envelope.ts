import {
  qualysFindingKey,
  qualysFindingVersion,
  type FindingEnvelope,
  type FindingState,
  type Severity,
} from "@vulnsub/shared";
import type { DetectionItem } from "./qualys-xml-parser.ts";
import { objectOf, textOf, type XmlObject } from "./qualys-xml-tree.ts";

/**
 * Maps one parsed detection to the common envelope.
 *
 * - asset: id = HOST/ID; hostname = DNS_DATA/HOSTNAME, else DNS, else
 *   NETBIOS; fqdn = DNS_DATA/FQDN; ipv4 from IP, ipv6 from IPV6.
 * - vulnerability: id = QID; title is null because the adapter does not
 *   query the KnowledgeBase; cves are the CVE ids in ASSET_CVE.
 * - severity: SEVERITY 1 info, 2 low, 3 medium, 4 high, 5 critical (the
 *   five Qualys levels, minimal to urgent); without SEVERITY, info.
 * - state: New and Active are open, Fixed is fixed, Re-Opened is reopened.
 *   Detections without STATUS (Info detections in older output) are open.
 * - key and version come from the shared Qualys helpers, fed with the
 *   trimmed element text exactly as sent.
 *
 * Throws QualysRecordError when a value has the wrong type, so a page with
 * a broken record is never half committed.
 */
export class QualysRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QualysRecordError";
  }
}

const SEVERITIES: Record<string, Severity> = {
  "1": "info",
  "2": "low",
  "3": "medium",
  "4": "high",
  "5": "critical",
};

const STATES: Record<string, FindingState> = {
  New: "open",
  Active: "open",
  Fixed: "fixed",
  "Re-Opened": "reopened",
};

export function createQualysEnvelope(
  item: DetectionItem,
  context: { source: string; observedAt: string },
): FindingEnvelope {
  const { host, detection } = item;
  const hostId = requireDigits(host, "ID", "HOST/ID");
  const qid = requireDigits(detection, "QID", `host ${hostId} DETECTION/QID`);
  const where = `host ${hostId} QID ${qid}`;
  const status = optionalText(detection, "STATUS");
  const lastFound = optionalText(detection, "LAST_FOUND_DATETIME");
  const lastFixed = optionalText(detection, "LAST_FIXED_DATETIME");
  const dnsData = objectOf(host.DNS_DATA);

  return {
    schemaVersion: 1,
    vendor: "qualys",
    source: context.source,
    findingKey: qualysFindingKey({
      uniqueVulnId: optionalText(detection, "UNIQUE_VULN_ID"),
      hostId,
      qid,
      port: optionalText(detection, "PORT"),
      protocol: optionalText(detection, "PROTOCOL"),
      ssl: optionalText(detection, "SSL"),
    }),
    version: qualysFindingVersion({ status, lastFound, lastFixed }),
    observedAt: context.observedAt,
    asset: {
      id: hostId,
      hostname:
        optionalText(dnsData, "HOSTNAME") ??
        optionalText(host, "DNS") ??
        optionalText(host, "NETBIOS"),
      fqdn: optionalText(dnsData, "FQDN"),
      ipv4: listOf(optionalText(host, "IP")),
      ipv6: listOf(optionalText(host, "IPV6")),
    },
    vulnerability: {
      id: qid,
      title: null,
      cves: cvesOf(optionalText(detection, "ASSET_CVE")),
      ...severityOf(optionalText(detection, "SEVERITY"), where),
    },
    state: stateOf(status, where),
    vendorState: status,
    firstSeen: timeOf(detection, "FIRST_FOUND_DATETIME", where),
    lastSeen: timeOf(detection, "LAST_FOUND_DATETIME", where),
    lastFixed: timeOf(detection, "LAST_FIXED_DATETIME", where),
    port: portOf(optionalText(detection, "PORT"), where),
    protocol: optionalText(detection, "PROTOCOL")?.toLowerCase() ?? null,
    raw: { host, detection },
  };
}

function optionalText(parent: XmlObject | null, name: string): string | null {
  if (!parent) return null;
  const text = textOf(parent[name]);
  return text === null || text === "" ? null : text;
}

function requireDigits(parent: XmlObject, name: string, what: string): string {
  const text = optionalText(parent, name);
  if (text === null) throw new QualysRecordError(`${what} is missing`);
  if (!/^\d+$/.test(text)) {
    throw new QualysRecordError(
      `${what} is not a number: ${JSON.stringify(text)}`,
    );
  }
  return text;
}

function severityOf(raw: string | null, where: string) {
  if (raw === null)
    return { severity: "info" as Severity, vendorSeverity: null };
  const severity = SEVERITIES[raw];
  if (!severity) {
    throw new QualysRecordError(
      `${where}: SEVERITY ${JSON.stringify(raw)} is not 1-5`,
    );
  }
  return { severity, vendorSeverity: raw };
}

function stateOf(status: string | null, where: string): FindingState {
  if (status === null) return "open";
  const state = STATES[status];
  if (!state) {
    throw new QualysRecordError(
      `${where}: unknown STATUS ${JSON.stringify(status)}`,
    );
  }
  return state;
}

// Qualys times are ISO 8601 UTC with whole seconds: 2020-04-17T18:55:20Z.
function timeOf(
  detection: XmlObject,
  name: string,
  where: string,
): string | null {
  const text = optionalText(detection, name);
  if (text === null) return null;
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new QualysRecordError(
      `${where}: ${name} is not a date: ${JSON.stringify(text)}`,
    );
  }
  return new Date(ms).toISOString();
}

function portOf(raw: string | null, where: string): number | null {
  if (raw === null) return null;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new QualysRecordError(
      `${where}: PORT ${JSON.stringify(raw)} is not 0-65535`,
    );
  }
  return port;
}

// NOTE: ASSET_CVE is read as text that contains CVE ids. Its layout (the
// separator) was not found in Qualys documents, so ids are matched by form.
function cvesOf(raw: string | null): string[] {
  if (raw === null) return [];
  const found = raw.toUpperCase().match(/CVE-\d{4}-\d{4,}/g) ?? [];
  return [...new Set(found)];
}

function listOf(value: string | null): string[] {
  return value === null ? [] : [value];
}
