import { createRandom, type Random } from "./common.ts";
import {
  HOST_NAMES,
  OS_PROFILES,
  pickIp,
  randomHex,
  randomMac,
  randomUuid,
  type OsProfile,
} from "./rapid7-hosts.ts";
import {
  createRapid7Catalog,
  keyPath,
  type SimCatalog,
  type SimVulnerability,
} from "./rapid7-catalog.ts";

/**
 * The simulated InsightVM estate: assets, their scans and the history of
 * every finding instance. The dataset is a pure function of the seed, the
 * sizes and `startTimeMs`. Each advance() is a pure function of the
 * previous state, the epoch number and the time passed in.
 *
 * History is stored as events, one per change (opened, fixed, status
 * changed, reintroduced), keyed by the epoch of the asset scan that saw it.
 * `last_found` is not stored: an open finding's last_found is the end of
 * the asset's latest scan, a fixed one's the end of the scan before the fix.
 */

export type FindingStatus =
  | "VULNERABLE_EXPL"
  | "VULNERABLE_VERS"
  | "VULNERABLE_POTENTIAL";

export interface SimScan {
  epoch: number;
  startMs: number;
  endMs: number;
}

export interface SimFindingEvent {
  epoch: number;
  open: boolean;
  status: FindingStatus;
  reintroducedMs: number | null;
}

export interface SimFinding {
  serial: number;
  vulnerability: SimVulnerability;
  key: string;
  port: number | null;
  protocol: string | null;
  nic: string | null;
  firstFoundMs: number;
  /** Padding of the proof in bytes; 0 for a normal proof. */
  largeProofBytes: number;
  /** Ascending by epoch; the first event opens the finding. */
  events: SimFindingEvent[];
}

export interface SimAsset {
  index: number;
  id: string;
  hostName: string | null;
  ip: string | null;
  mac: string | null;
  os: OsProfile;
  tags: { name: string; type: string }[];
  uniqueIdentifiers: { id: string; source: string }[];
  /** Ascending by end time; epoch 0 always has one. */
  scans: SimScan[];
  findings: SimFinding[];
}

export interface Rapid7DatasetOptions {
  seed: number;
  assets: number;
  findingsPerAsset: number;
  largeFindingRate: number;
  /** Every epoch-0 scan ends at or before this time. */
  startTimeMs: number;
}

export type Rapid7Dataset = ReturnType<typeof createRapid7Dataset>;

export function createRapid7Dataset(options: Rapid7DatasetOptions) {
  const random = createRandom(options.seed);
  const catalogSize = Math.max(60, options.findingsPerAsset * 8);
  const catalog = createRapid7Catalog(random, catalogSize);
  const consoleUuid = randomUuid(random);
  const serial = { next: 0 };
  const assets: SimAsset[] = [];
  for (let index = 1; index <= options.assets; index++) {
    assets.push(
      buildAsset(random, catalog, consoleUuid, index, options, serial),
    );
  }
  // Rapid7 sorts by id as a string, so "asset-10" comes before "asset-2".
  const sorted = [...assets].sort((a, b) => compareIds(a.id, b.id));
  const epochTimesMs = [options.startTimeMs];

  return {
    catalog,
    /** Assets in ascending id order, the order of the search. */
    assets: sorted,
    get epoch() {
      return epochTimesMs.length - 1;
    },
    /**
     * Runs one scan round at `atMs` (moved past the previous epoch when the
     * clock is behind): about 60 % of assets are rescanned, and their
     * findings are fixed, reintroduced, changed or added.
     */
    advance(atMs: number): number {
      const previousMs = epochTimesMs[epochTimesMs.length - 1] as number;
      const epochMs = Math.max(atMs, previousMs + 1);
      epochTimesMs.push(epochMs);
      const epoch = epochTimesMs.length - 1;
      const epochRandom = createRandom(mixSeed(options.seed, epoch));
      for (const asset of sorted) {
        if (!epochRandom.chance(0.6)) continue;
        rescan(epochRandom, catalog, asset, epoch, epochMs, serial);
      }
      return epoch;
    },
    /** Open finding instances as of the newest epoch. */
    openFindings(): number {
      let open = 0;
      for (const asset of sorted) {
        for (const finding of asset.findings) {
          if (finding.events[finding.events.length - 1]?.open) open++;
        }
      }
      return open;
    },
  };
}

/** Latest event of `finding` at or before `epoch`, or undefined. */
export function eventAt(
  finding: SimFinding,
  epoch: number,
): SimFindingEvent | undefined {
  for (let i = finding.events.length - 1; i >= 0; i--) {
    const event = finding.events[i] as SimFindingEvent;
    if (event.epoch <= epoch) return event;
  }
  return undefined;
}

/** Index of the asset's latest scan ending at or before `timeMs`, or -1. */
export function scanIndexAt(asset: SimAsset, timeMs: number): number {
  for (let i = asset.scans.length - 1; i >= 0; i--) {
    if ((asset.scans[i] as SimScan).endMs <= timeMs) return i;
  }
  return -1;
}

export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const STATUSES: readonly FindingStatus[] = [
  "VULNERABLE_EXPL",
  "VULNERABLE_VERS",
  "VULNERABLE_VERS",
  "VULNERABLE_POTENTIAL",
];

function buildAsset(
  random: Random,
  catalog: SimCatalog,
  consoleUuid: string,
  index: number,
  options: Rapid7DatasetOptions,
  serial: { next: number },
): SimAsset {
  const endMs = options.startTimeMs - random.int(0, 72 * HOUR_MS);
  const scan: SimScan = {
    epoch: 0,
    startMs: endMs - random.int(30_000, 1_200_000),
    endMs,
  };
  const asset: SimAsset = {
    index,
    id: `${consoleUuid}-default-asset-${index}`,
    hostName: random.chance(0.1) ? null : random.pick(HOST_NAMES)(index),
    ip: pickIp(random, index),
    mac: random.chance(0.2) ? null : randomMac(random),
    os: random.pick(OS_PROFILES),
    tags: [{ name: random.pick(["test", "prod", "dmz"]), type: "SITE" }],
    uniqueIdentifiers: [{ id: randomHex(random, 32), source: "R7 Agent" }],
    scans: [scan],
    findings: [],
  };
  const used = new Set<string>();
  while (asset.findings.length < options.findingsPerAsset) {
    const previous = asset.findings[asset.findings.length - 1];
    const duplicate = previous?.vulnerability.keyed && random.chance(0.3);
    const vulnerability = duplicate
      ? previous.vulnerability
      : pickUnused(random, catalog, used);
    const key = duplicate
      ? keyPath(vulnerability, asset.findings.length + 1)
      : initialKey(random, vulnerability);
    const firstFoundMs = floorSeconds(endMs - random.int(0, 400 * DAY_MS));
    const reintroduced = random.chance(0.15)
      ? floorSeconds(random.int(firstFoundMs, endMs))
      : null;
    const finding = newFinding(
      random,
      vulnerability,
      key,
      0,
      firstFoundMs,
      serial,
    );
    (finding.events[0] as SimFindingEvent).reintroducedMs = reintroduced;
    finding.largeProofBytes = random.chance(options.largeFindingRate)
      ? random.int(100_000, 500_000)
      : 0;
    asset.findings.push(finding);
  }
  return asset;
}

function rescan(
  random: Random,
  catalog: SimCatalog,
  asset: SimAsset,
  epoch: number,
  epochMs: number,
  serial: { next: number },
) {
  asset.scans.push({
    epoch,
    startMs: epochMs - random.int(30_000, 1_200_000),
    endMs: epochMs,
  });
  for (const finding of asset.findings) {
    const last = finding.events[finding.events.length - 1] as SimFindingEvent;
    const roll = random.next();
    if (last.open && roll < 0.08) {
      finding.events.push({ ...last, epoch, open: false });
    } else if (last.open && roll < 0.12) {
      finding.events.push({ ...last, epoch, status: otherStatus(last.status) });
    } else if (!last.open && roll < 0.25) {
      const reintroducedMs = floorSeconds(epochMs);
      finding.events.push({ ...last, epoch, open: true, reintroducedMs });
    }
  }
  if (random.chance(0.15)) {
    const used = new Set(asset.findings.map((f) => f.vulnerability.id));
    const vulnerability = pickUnused(random, catalog, used);
    const key = initialKey(random, vulnerability);
    const firstFoundMs = floorSeconds(epochMs);
    asset.findings.push(
      newFinding(random, vulnerability, key, epoch, firstFoundMs, serial),
    );
  }
}

function newFinding(
  random: Random,
  vulnerability: SimVulnerability,
  key: string,
  epoch: number,
  firstFoundMs: number,
  serial: { next: number },
): SimFinding {
  const service = vulnerability.service;
  const port =
    service && vulnerability.id === "certificate-common-name-mismatch"
      ? random.pick([443, 3389, 8443])
      : (service?.port ?? null);
  return {
    serial: serial.next++,
    vulnerability,
    key,
    port,
    protocol: service?.protocol ?? null,
    nic: random.chance(0.05) ? "eth0" : null,
    firstFoundMs,
    largeProofBytes: 0,
    events: [
      {
        epoch,
        open: true,
        status: random.pick(STATUSES),
        reintroducedMs: null,
      },
    ],
  };
}

function pickUnused(
  random: Random,
  catalog: SimCatalog,
  used: Set<string>,
): SimVulnerability {
  const all = catalog.vulnerabilities;
  let candidate = random.pick(all);
  for (let tries = 0; used.has(candidate.id) && tries < 20; tries++) {
    candidate = random.pick(all);
  }
  // A crowded asset falls back to the first free definition in order.
  if (used.has(candidate.id)) {
    candidate = all.find((item) => !used.has(item.id)) ?? candidate;
  }
  used.add(candidate.id);
  return candidate;
}

function initialKey(random: Random, vulnerability: SimVulnerability): string {
  if (!vulnerability.keyed || random.chance(0.5)) return "";
  return keyPath(vulnerability, 0);
}

function otherStatus(status: FindingStatus): FindingStatus {
  return status === "VULNERABLE_EXPL" ? "VULNERABLE_VERS" : "VULNERABLE_EXPL";
}

function floorSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

function mixSeed(seed: number, epoch: number): number {
  return (seed ^ Math.imul(epoch, 0x9e3779b1)) >>> 0;
}
