import { createRandom, type Random } from "./common.ts";
import {
  OPERATING_SYSTEMS,
  SERVICE_PORTS,
  createPluginCatalog,
  randomHostname,
  randomUuid,
  type SimPlugin,
  type SimService,
} from "./tenable-catalog.ts";

/**
 * The simulated Tenable findings. The dataset is a pure function of the
 * seed, the sizes and `baseTimeMs`. Each advance() is a pure function of
 * the previous state, the epoch and the time passed in. Finding objects
 * are never changed in place because an advance replaces them, so an
 * export keeps serving the findings as they were at its creation.
 */

export type FindingStateName = "OPEN" | "REOPENED" | "FIXED";

export interface SimAsset {
  uuid: string;
  hostname: string | null;
  fqdn: string | null;
  ipv4: string | null;
  ipv6: string | null;
  macAddress: string | null;
  netbiosName: string | null;
  operatingSystem: string[] | null;
  deviceType: string;
  agentUuid: string | null;
  biosUuid: string | null;
  networkId: string;
  lastAuthenticatedMs: number | null;
  scanUuid: string;
  scheduleUuid: string;
}

export interface SimFinding {
  readonly asset: SimAsset;
  readonly plugin: SimPlugin;
  readonly service: SimService;
  readonly state: FindingStateName;
  readonly firstFoundMs: number;
  readonly lastFoundMs: number;
  readonly lastFixedMs: number | null;
  readonly resurfacedMs: number | null;
  readonly indexedMs: number;
  /** Absent on a few findings, as on data older than the field. */
  readonly findingId: string | null;
  readonly source: "NESSUS" | "AGENT";
  /** Size of a huge plugin output in bytes; 0 for a short output. */
  readonly largeOutputBytes: number;
}

export interface TenableDatasetOptions {
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Epoch 0 times lie before this instant (epoch milliseconds). */
  baseTimeMs: number;
  /** Share of findings with a 100-500 KB plugin output. */
  largeFindingRate: number;
}

/** The filter of one export, already validated. */
export interface FindingFilter {
  /** Epoch milliseconds, or null for no `since` filter. */
  sinceMs: number | null;
  states: ReadonlySet<FindingStateName>;
  /** Lowercase severity names, or null for every severity. */
  severities: ReadonlySet<string> | null;
}

export type TenableDataset = ReturnType<typeof createTenableDataset>;

const DAY_MS = 86_400_000;

/** Builds the epoch 0 dataset. */
export function createTenableDataset(options: TenableDatasetOptions) {
  const random = createRandom(options.seed);
  const plugins = createPluginCatalog(random);
  const byAsset: SimFinding[][] = [];
  for (let index = 0; index < options.assets; index++) {
    const asset = buildAsset(random, index);
    byAsset.push(buildFindings(random, asset, plugins, options));
  }
  let epoch = 0;

  return {
    /** Findings grouped per asset, in asset order; chunks follow it. */
    byAsset: byAsset as readonly (readonly SimFinding[])[],
    get epoch() {
      return epoch;
    },
    get findingCount() {
      return byAsset.reduce((sum, findings) => sum + findings.length, 0);
    },
    /**
     * Moves to the next epoch at `nowMs`: some open findings are fixed,
     * some fixed ones reopen, and some are seen again by a new scan.
     */
    advance(nowMs: number): number {
      epoch++;
      const mutation = createRandom(options.seed ^ (epoch * 0x9e3779b1));
      for (const findings of byAsset) {
        for (let i = 0; i < findings.length; i++) {
          const finding = findings[i] as SimFinding;
          findings[i] = mutateFinding(mutation, finding, nowMs);
        }
      }
      return epoch;
    },
  };
}

/** Returns true when `finding` passes the export filter. */
export function matchesFilter(
  finding: SimFinding,
  filter: FindingFilter,
): boolean {
  if (!filter.states.has(finding.state)) return false;
  if (filter.severities) {
    const name = ["info", "low", "medium", "high", "critical"][
      finding.plugin.severityId
    ];
    if (!name || !filter.severities.has(name)) return false;
  }
  if (filter.sinceMs === null) return true;

  // `since` means seen since for open findings and fixed since for fixed
  // ones (Tenable's vulns export filter documentation).
  const changedMs =
    finding.state === "FIXED" ? finding.lastFixedMs : finding.lastFoundMs;
  return changedMs !== null && changedMs >= filter.sinceMs;
}

function mutateFinding(
  random: Random,
  finding: SimFinding,
  nowMs: number,
): SimFinding {
  const draw = random.next();
  const at = Math.max(nowMs, finding.lastFoundMs + 1, finding.indexedMs + 1);
  if (finding.state === "FIXED") {
    if (draw >= 0.3) return finding;
    return {
      ...finding,
      state: "REOPENED",
      lastFoundMs: at,
      resurfacedMs: at,
      indexedMs: at,
    };
  }
  if (draw < 0.1) {
    return { ...finding, state: "FIXED", lastFixedMs: at, indexedMs: at };
  }
  if (draw < 0.35) return { ...finding, lastFoundMs: at, indexedMs: at };
  return finding;
}

function buildAsset(random: Random, index: number): SimAsset {
  const hostname = randomHostname(random, index);
  const hasIpv4 = random.chance(0.9);
  const ipv4 = hasIpv4
    ? `10.${random.int(0, 255)}.${random.int(0, 255)}.${random.int(1, 254)}`
    : null;
  const ipv6 =
    !hasIpv4 || random.chance(0.3)
      ? `fd00:${hex(random)}:${hex(random)}::${hex(random)}`
      : null;
  const windows = random.chance(0.5);
  const hasAgent = random.chance(0.4);
  return {
    uuid: randomUuid(random),
    hostname: random.chance(0.05) && ipv4 ? ipv4 : hostname,
    fqdn: random.chance(0.85) ? `${hostname}.corp.example` : null,
    ipv4,
    ipv6,
    macAddress: random.chance(0.8) ? randomMac(random) : null,
    netbiosName: windows ? hostname.toUpperCase().slice(0, 15) : null,
    operatingSystem: random.chance(0.9)
      ? [
          windows
            ? random.pick(OPERATING_SYSTEMS.slice(0, 3))
            : random.pick(OPERATING_SYSTEMS.slice(3)),
        ]
      : null,
    deviceType: random.pick(["general-purpose", "hypervisor", "router"]),
    agentUuid: hasAgent ? randomUuid(random).replaceAll("-", "") : null,
    biosUuid: random.chance(0.7) ? randomUuid(random) : null,
    networkId: "00000000-0000-0000-0000-000000000000",
    lastAuthenticatedMs: null,
    scanUuid: randomUuid(random),
    scheduleUuid: `template-${randomUuid(random)}`,
  };
}

function buildFindings(
  random: Random,
  asset: SimAsset,
  plugins: readonly SimPlugin[],
  options: TenableDatasetOptions,
): SimFinding[] {
  const findings: SimFinding[] = [];
  const identities = new Set<string>();
  const limit = options.findingsPerAsset * 20;
  for (let tries = 0; findings.length < options.findingsPerAsset; tries++) {
    if (tries > limit) break;
    const plugin = random.pick(plugins);
    const service = random.pick(SERVICE_PORTS[plugin.serviceKind]);
    // Tenable identifies a finding by asset, plugin, port and protocol.
    const identity = `${plugin.id}/${service.port}/${service.protocol}`;
    if (identities.has(identity)) continue;
    identities.add(identity);
    findings.push(buildFinding(random, asset, plugin, service, options));
  }
  return findings;
}

function buildFinding(
  random: Random,
  asset: SimAsset,
  plugin: SimPlugin,
  service: SimService,
  options: TenableDatasetOptions,
): SimFinding {
  const base = options.baseTimeMs;
  const firstFoundMs =
    base - random.int(30, 400) * DAY_MS - random.int(0, DAY_MS);
  const lastFoundMs = random.int(firstFoundMs, base - 60_000);
  const draw = random.next();
  let state: FindingStateName = "FIXED";
  if (draw < 0.8) state = "OPEN";
  else if (draw < 0.87) state = "REOPENED";
  let lastFixedMs: number | null = null;
  if (state === "FIXED") {
    const fixedAfterMs = random.int(1, 120) * 3600_000;
    lastFixedMs = Math.min(base - 1000, lastFoundMs + fixedAfterMs);
  } else if (state === "REOPENED") {
    lastFixedMs = random.int(firstFoundMs, lastFoundMs);
  }
  const large = random.chance(options.largeFindingRate);
  return {
    asset,
    plugin,
    service,
    state,
    firstFoundMs,
    lastFoundMs,
    lastFixedMs,
    resurfacedMs: state === "REOPENED" ? lastFoundMs : null,
    indexedMs: Math.min(
      base - 1,
      Math.max(lastFoundMs, lastFixedMs ?? 0) + random.int(1, 600_000),
    ),
    findingId: random.chance(0.95) ? randomUuid(random) : null,
    source: asset.agentUuid && random.chance(0.5) ? "AGENT" : "NESSUS",
    largeOutputBytes: large ? random.int(100_000, 500_000) : 0,
  };
}

function hex(random: Random): string {
  return random.int(0, 0xffff).toString(16);
}

function randomMac(random: Random): string {
  const octets: string[] = [];
  for (let i = 0; i < 6; i++) {
    octets.push(random.int(0, 255).toString(16).padStart(2, "0"));
  }
  return octets.join(":");
}
