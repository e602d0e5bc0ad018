import { qualysFindingKey, qualysFindingVersion } from "@vulnsub/shared";
import { createRandom, type Random, type ServedVersion } from "./common.ts";

/**
 * The simulated Qualys subscription: hosts sorted by host ID, each with its
 * detections sorted by QID. The same seed and sizes give the same dataset;
 * advanceQualysEpoch then changes it the way rescans do.
 */
export interface QualysDataset {
  readonly hosts: QualysHost[];
  readonly detectionCount: number;
}

export interface QualysHost {
  id: number;
  /** Null for hosts tracked without an IPv4 address. */
  ip: string | null;
  ipv6: string | null;
  trackingMethod: "IP" | "DNS" | "NETBIOS" | "AGENT";
  os: string | null;
  dns: string | null;
  dnsData: { hostname: string; domain: string; fqdn: string } | null;
  netbios: string | null;
  qgHostId: string | null;
  lastScan: string;
  lastVmScannedDurationSec: number | null;
  /** Writes CDATA values on their own indented lines, as a public mock does. */
  spacedCdata: boolean;
  detections: QualysDetection[];
}

export type DetectionStatus = "New" | "Active" | "Fixed" | "Re-Opened";
export const DETECTION_STATUSES: readonly DetectionStatus[] = [
  "New",
  "Active",
  "Fixed",
  "Re-Opened",
];

export interface QualysDetection {
  /** Position in the whole dataset; seeds the RESULTS text. */
  index: number;
  uniqueVulnId: number | null;
  qid: number;
  type: "Confirmed" | "Potential" | "Info";
  severity: number;
  port: number | null;
  protocol: "tcp" | "udp" | null;
  ssl: 0 | 1 | null;
  /** Size of the generated RESULTS text in bytes. */
  resultsBytes: number;
  status: DetectionStatus;
  firstFound: string;
  lastFound: string;
  timesFound: number;
  lastTest: string;
  lastUpdate: string;
  lastFixed: string | null;
  firstReopened: string | null;
  lastReopened: string | null;
  timesReopened: number;
  qds: number | null;
  /** Written as ASSET_CVE when not empty. */
  cves: string[];
  lastProcessed: string;
}

export interface QualysDatasetOptions {
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Share of detections whose RESULTS are 100-500 KB. */
  largeFindingRate: number;
  /** RESULTS size of every other detection; unset gives 40-400 bytes. */
  resultsBytes?: number;
}

// Fixed so the dataset does not depend on the day it is built.
const BASE_TIME_MS = Date.UTC(2024, 0, 15, 8, 0, 0);
const DAY_MS = 86_400_000;

// Non-ASCII labels are deliberate: hostnames arrive in UTF-8 CDATA.
const HOST_LABELS = [
  "web",
  "db",
  "ñandú",
  "サーバー",
  "mail",
  "build",
  "kiosk",
  "gateway",
];
const OPERATING_SYSTEMS = [
  "Amazon Linux",
  "Windows 2016/2019/10",
  "Ubuntu Linux 22.04",
  "Red Hat Enterprise Linux 8.6",
  "Cisco IOS XE 17.3",
];

/** Builds the dataset; hosts are sorted by ID and QIDs are unique per host. */
export function createQualysDataset(
  options: QualysDatasetOptions,
): QualysDataset {
  const random = createRandom(options.seed);
  const hosts: QualysHost[] = [];
  let hostId = 1_000_000 + random.int(0, 5_000);
  let index = 0;

  for (let n = 0; n < options.assets; n++) {
    hostId += random.int(1, 400);
    const host = createHost(random, hostId, n);
    let qid = random.int(6, 2_000);
    for (let k = 0; k < options.findingsPerAsset; k++) {
      qid += random.int(1, 3_000);
      host.detections.push(createDetection(random, options, qid, index));
      index++;
    }
    hosts.push(host);
  }
  return { hosts, detectionCount: index };
}

/**
 * Applies one round of rescans at `nowIso`: about 10% of open detections
 * become Fixed, 30% of Fixed ones become Re-Opened, and 15% of open ones
 * are found again. Every changed detection gets LAST_PROCESSED_DATETIME =
 * `nowIso`. Returns how many detections changed.
 */
export function advanceQualysEpoch(
  dataset: QualysDataset,
  seed: number,
  epoch: number,
  nowIso: string,
): number {
  const random = createRandom(seed * 7919 + epoch);
  let changed = 0;
  for (const host of dataset.hosts) {
    for (const detection of host.detections) {
      if (mutateDetection(random, detection, nowIso)) changed++;
    }
  }
  return changed;
}

/** Returns the finding identity and version the adapter must compute. */
export function servedVersionOf(
  host: QualysHost,
  detection: QualysDetection,
): ServedVersion {
  return {
    findingKey: qualysFindingKey({
      uniqueVulnId:
        detection.uniqueVulnId === null ? null : String(detection.uniqueVulnId),
      hostId: String(host.id),
      qid: String(detection.qid),
      port: detection.port,
      protocol: detection.protocol,
      ssl: detection.ssl === null ? null : String(detection.ssl),
    }),
    version: qualysFindingVersion({
      status: detection.status,
      lastFound: detection.lastFound,
      lastFixed: detection.lastFixed,
    }),
  };
}

/** Formats a time the way Qualys does: ISO 8601 UTC, whole seconds. */
export function formatQualysTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000)
    .toISOString()
    .replace(".000Z", "Z");
}

function createHost(random: Random, id: number, n: number): QualysHost {
  const label = `${HOST_LABELS[n % HOST_LABELS.length]}-${String(n).padStart(2, "0")}`;
  const domain = random.pick(["example.test", "corp.example.test"]);
  const addressKind = random.next();
  const hasIpv4 = addressKind < 0.85;
  const hasIpv6 = addressKind >= 0.85 && addressKind < 0.93;
  const hasDns = random.chance(0.8);
  const scannedMs = BASE_TIME_MS - random.int(0, 30) * DAY_MS;

  return {
    id,
    ip: hasIpv4
      ? `10.${random.int(0, 255)}.${random.int(0, 255)}.${random.int(1, 254)}`
      : null,
    ipv6: hasIpv6 ? `fd00::${id.toString(16)}` : null,
    trackingMethod: hasIpv4 ? random.pick(["IP", "DNS", "NETBIOS"]) : "AGENT",
    os: random.chance(0.9) ? random.pick(OPERATING_SYSTEMS) : null,
    dns: hasDns ? `${label}.${domain}` : null,
    dnsData:
      hasDns && random.chance(0.7)
        ? { hostname: label, domain, fqdn: `${label}.${domain}` }
        : null,
    netbios: random.chance(0.5) ? label.toUpperCase() : null,
    qgHostId: random.chance(0.6) ? uuidFrom(random) : null,
    lastScan: formatQualysTime(scannedMs),
    lastVmScannedDurationSec: random.chance(0.5) ? random.int(60, 2_000) : null,
    spacedCdata: random.chance(0.3),
    detections: [],
  };
}

function createDetection(
  random: Random,
  options: QualysDatasetOptions,
  qid: number,
  index: number,
): QualysDetection {
  const type = pickType(random);
  const hasPort = type !== "Info" && random.chance(0.4);
  const firstFoundMs = BASE_TIME_MS - random.int(30, 700) * DAY_MS;
  const lastFoundMs = BASE_TIME_MS - random.int(0, 29) * DAY_MS;
  const status = pickStatus(random);
  const lastFixed =
    status === "Fixed" || status === "Re-Opened"
      ? formatQualysTime(lastFoundMs - random.int(1, 20) * DAY_MS)
      : null;
  const reopened =
    status === "Re-Opened" ? formatQualysTime(lastFoundMs) : null;
  const lastFound = formatQualysTime(
    status === "Fixed" ? lastFoundMs - 25 * DAY_MS : lastFoundMs,
  );
  const processed = formatQualysTime(lastFoundMs + 3_600_000);

  return {
    index,
    uniqueVulnId: random.chance(0.9) ? 100_000_000 + index * 7 : null,
    qid,
    type,
    severity: random.int(1, 5),
    port: hasPort ? random.pick([22, 443, 3389, 8443, 161]) : null,
    protocol: hasPort ? random.pick(["tcp", "tcp", "udp"] as const) : null,
    ssl:
      type === "Info" && random.chance(0.5) ? null : random.chance(0.2) ? 1 : 0,
    resultsBytes: pickResultsBytes(random, options),
    status,
    firstFound: formatQualysTime(firstFoundMs),
    lastFound,
    timesFound: random.int(1, 500),
    lastTest: lastFound,
    lastUpdate: processed,
    lastFixed,
    firstReopened: reopened,
    lastReopened: reopened,
    timesReopened: reopened ? 1 : 0,
    qds: random.chance(0.4) ? random.int(1, 100) : null,
    cves:
      type === "Confirmed" && random.chance(0.3)
        ? [
            `CVE-2023-${random.int(1000, 49999)}`,
            `CVE-2024-${random.int(1000, 29999)}`,
          ]
        : [],
    lastProcessed: processed,
  };
}

function mutateDetection(
  random: Random,
  detection: QualysDetection,
  nowIso: string,
): boolean {
  const roll = random.next();
  if (detection.status === "Fixed") {
    if (roll >= 0.3) return false;
    detection.status = "Re-Opened";
    detection.firstReopened ??= nowIso;
    detection.lastReopened = nowIso;
    detection.timesReopened++;
    markFound(detection, nowIso);
    return true;
  }
  if (roll < 0.1) {
    detection.status = "Fixed";
    detection.lastFixed = nowIso;
    detection.lastTest = nowIso;
    detection.lastUpdate = nowIso;
    detection.lastProcessed = nowIso;
    return true;
  }
  if (roll < 0.25) {
    if (detection.status === "New") detection.status = "Active";
    markFound(detection, nowIso);
    return true;
  }
  return false;
}

function markFound(detection: QualysDetection, nowIso: string) {
  detection.lastFound = nowIso;
  detection.lastTest = nowIso;
  detection.lastUpdate = nowIso;
  detection.lastProcessed = nowIso;
  detection.timesFound++;
}

function pickType(random: Random): QualysDetection["type"] {
  const roll = random.next();
  if (roll < 0.15) return "Info";
  if (roll < 0.3) return "Potential";
  return "Confirmed";
}

function pickStatus(random: Random): DetectionStatus {
  const roll = random.next();
  if (roll < 0.15) return "New";
  if (roll < 0.7) return "Active";
  if (roll < 0.9) return "Fixed";
  return "Re-Opened";
}

function pickResultsBytes(random: Random, options: QualysDatasetOptions) {
  if (random.chance(options.largeFindingRate)) {
    return random.int(100 * 1024, 500 * 1024);
  }
  return options.resultsBytes ?? random.int(40, 400);
}

function uuidFrom(random: Random): string {
  const hex = () => random.int(0, 0xffff).toString(16).padStart(4, "0");
  return `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-8${hex().slice(1)}-${hex()}${hex()}${hex()}`;
}
