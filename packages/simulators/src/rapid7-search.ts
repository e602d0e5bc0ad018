import { rapid7FindingKey, rapid7FindingVersion } from "@vulnsub/shared";
import type { ServedVersion } from "./common.ts";
import { buildProof, type SimCatalog } from "./rapid7-catalog.ts";
import {
  compare,
  type AssetClause,
  type VulnerabilityFilter,
} from "./rapid7-criteria.ts";
import {
  compareIds,
  eventAt,
  scanIndexAt,
  type SimAsset,
  type SimFinding,
  type SimFindingEvent,
  type SimScan,
} from "./rapid7-dataset.ts";

/**
 * Evaluates the two InsightVM searches against the dataset and builds the
 * `data` items of a page.
 *
 * The asset search is a differential between comparisonTime and
 * currentTime, each read as "the asset's latest scan at that time":
 * - new: open at currentTime and absent, fixed or different (status changed,
 *   reintroduced) at comparisonTime;
 * - remediated: open at comparisonTime, fixed at currentTime;
 * - same: open and unchanged; served only with includeSame=true.
 * Without comparisonTime there is nothing to compare, so every open finding
 * is "same" (and served only with includeSame=true).
 */

export interface AssetSearchRequest {
  clauses: readonly AssetClause[];
  vulnerabilityFilter: VulnerabilityFilter;
  comparisonMs: number | null;
  currentMs: number;
  includeSame: boolean;
  includeUniqueIdentifiers: boolean;
  descending: boolean;
  /** Id of the last asset of the previous page (the cursor), or null. */
  afterId: string | null;
  size: number;
}

export interface SearchPage {
  data: Record<string, unknown>[];
  /** Finding versions in `data`, for the ground truth. */
  served: ServedVersion[];
  lastId: string | null;
  totalResources: number;
}

export type FindingList = "new" | "same" | "remediated";

/** Runs one page of the asset search over `assets` (ascending by id). */
export function searchAssets(
  assets: readonly SimAsset[],
  request: AssetSearchRequest,
): SearchPage {
  const ordered = request.descending ? [...assets].reverse() : assets;
  const page: SearchPage = {
    data: [],
    served: [],
    lastId: null,
    totalResources: 0,
  };
  for (const asset of ordered) {
    const scanIndex = scanIndexAt(asset, request.currentMs);
    if (scanIndex < 0) continue;
    const scan = asset.scans[scanIndex] as SimScan;
    if (!matchesClauses(asset, scan, request.clauses)) continue;

    page.totalResources++;
    if (!isAfter(asset.id, request.afterId, request.descending)) continue;
    if (page.data.length >= request.size) continue;
    page.data.push(renderAsset(asset, scanIndex, request, page.served));
    page.lastId = asset.id;
  }
  return page;
}

/** Runs one page of the vulnerability search, ascending by id. */
export function searchVulnerabilities(
  catalog: SimCatalog,
  filter: VulnerabilityFilter,
  afterId: string | null,
  size: number,
): SearchPage {
  const matching = catalog.vulnerabilities
    .filter(
      (item) => !item.retired && matchesFilter(filter, item.id, item.severity),
    )
    .sort((a, b) => compareIds(a.id, b.id));
  const rest = matching.filter((item) => isAfter(item.id, afterId, false));
  const chosen = rest.slice(0, size);
  return {
    data: chosen.map((item) => item.definition),
    served: [],
    lastId: chosen[chosen.length - 1]?.id ?? null,
    totalResources: matching.length,
  };
}

function renderAsset(
  asset: SimAsset,
  scanIndex: number,
  request: AssetSearchRequest,
  served: ServedVersion[],
): Record<string, unknown> {
  const scan = asset.scans[scanIndex] as SimScan;
  const lists: Record<FindingList, Record<string, unknown>[]> = {
    new: [],
    same: [],
    remediated: [],
  };
  const counts = { critical: 0, severe: 0, moderate: 0, risk: 0 };
  const comparisonIndex =
    request.comparisonMs === null
      ? -1
      : scanIndexAt(asset, request.comparisonMs);

  for (const finding of asset.findings) {
    const vulnerability = finding.vulnerability;
    const current = eventAt(finding, scan.epoch);
    if (!current) continue;
    if (current.open) {
      counts[vulnerability.severity]++;
      counts.risk += vulnerability.riskScore;
    }
    const filter = request.vulnerabilityFilter;
    if (!matchesFilter(filter, vulnerability.id, vulnerability.severity)) {
      continue;
    }
    const list = classify(asset, finding, current, comparisonIndex, request);
    if (!list || (list === "same" && !request.includeSame)) continue;

    const lastFoundMs =
      list === "remediated"
        ? scanBefore(asset, current.epoch).endMs
        : scan.endMs;
    const item = renderFinding(finding, current, lastFoundMs);
    lists[list].push(item);
    served.push(servedVersion(asset, item, list));
  }

  const body: Record<string, unknown> = {
    assessed_for_policies: false,
    assessed_for_vulnerabilities: true,
    credential_assessments: [],
    critical_vulnerabilities: counts.critical,
    exploits: 0,
  };
  if (asset.hostName !== null) body.host_name = asset.hostName;
  body.id = asset.id;
  if (asset.ip !== null) body.ip = asset.ip;
  Object.assign(body, {
    last_assessed_for_vulnerabilities: isoMs(scan.endMs),
    last_scan_end: isoMs(scan.endMs),
    last_scan_start: isoMs(scan.startMs),
  });
  if (asset.mac !== null) body.mac = asset.mac;
  Object.assign(body, {
    malware_kits: 0,
    moderate_vulnerabilities: counts.moderate,
    os_architecture: "x86_64",
    os_description: asset.os.description,
    os_family: asset.os.family,
    os_name: asset.os.name,
    os_system_name: asset.os.description,
    os_type: "General",
    os_vendor: asset.os.vendor,
    os_version: asset.os.version,
    risk_score: Math.round(counts.risk),
    severe_vulnerabilities: counts.severe,
    tags: asset.tags,
    total_vulnerabilities: counts.critical + counts.severe + counts.moderate,
    type: "guest",
    unique_identifiers: request.includeUniqueIdentifiers
      ? asset.uniqueIdentifiers
      : [],
    new: lists.new,
  });
  if (request.includeSame) body.same = lists.same;
  body.remediated = lists.remediated;
  return body;
}

function classify(
  asset: SimAsset,
  finding: SimFinding,
  current: SimFindingEvent,
  comparisonIndex: number,
  request: AssetSearchRequest,
): FindingList | null {
  if (request.comparisonMs === null) return current.open ? "same" : null;

  const before =
    comparisonIndex >= 0
      ? eventAt(finding, (asset.scans[comparisonIndex] as SimScan).epoch)
      : baselineEvent(finding, request.comparisonMs);
  if (current.open) {
    // Events are recorded only on a change, so the same event object at
    // both times means the finding did not change in between.
    return before === current ? "same" : "new";
  }
  return before?.open ? "remediated" : null;
}

// Before the asset's first scan in the dataset, a finding from epoch 0
// counts as present if it was found (or last reintroduced) by then.
function baselineEvent(
  finding: SimFinding,
  comparisonMs: number,
): SimFindingEvent | undefined {
  const first = finding.events[0];
  if (!first || first.epoch !== 0) return undefined;
  const since = first.reintroducedMs ?? finding.firstFoundMs;
  return since <= comparisonMs ? first : undefined;
}

function renderFinding(
  finding: SimFinding,
  event: SimFindingEvent,
  lastFoundMs: number,
): Record<string, unknown> {
  const vulnerability = finding.vulnerability;
  return {
    check_id: vulnerability.checkId,
    first_found: isoSeconds(finding.firstFoundMs),
    key: finding.key,
    last_found: isoMs(lastFoundMs),
    nic: finding.nic,
    port: finding.port,
    proof: buildProof(vulnerability, finding.key, finding.largeProofBytes),
    protocol: finding.protocol,
    reintroduced:
      event.reintroducedMs === null ? null : isoSeconds(event.reintroducedMs),
    solution_fix: vulnerability.solution.fix,
    solution_id: vulnerability.solution.id,
    solution_summary: vulnerability.solution.summary,
    solution_type: vulnerability.solution.type,
    status: event.status,
    vulnerability_id: vulnerability.id,
  };
}

// The state rule is the adapter's: remediated means fixed, a reintroduced
// finding in `new` is reopened, everything else is open.
function servedVersion(
  asset: SimAsset,
  item: Record<string, unknown>,
  list: FindingList,
): ServedVersion {
  const reintroduced = item.reintroduced as string | null;
  const state =
    list === "remediated"
      ? "fixed"
      : list === "new" && reintroduced
        ? "reopened"
        : "open";
  return {
    findingKey: rapid7FindingKey({
      assetId: asset.id,
      vulnerabilityId: item.vulnerability_id as string,
      key: item.key as string,
      port: item.port as number | null,
      protocol: item.protocol as string | null,
    }),
    version: rapid7FindingVersion({
      state,
      status: item.status as string,
      lastFound: item.last_found as string,
      reintroduced,
    }),
  };
}

function scanBefore(asset: SimAsset, epoch: number): SimScan {
  const index = asset.scans.findIndex((scan) => scan.epoch === epoch);
  return (asset.scans[Math.max(0, index - 1)] ?? asset.scans[0]) as SimScan;
}

function matchesClauses(
  asset: SimAsset,
  scan: SimScan,
  clauses: readonly AssetClause[],
): boolean {
  return clauses.every((clause) => {
    const value =
      clause.field === "last_scan_start"
        ? scan.startMs
        : clause.field === "risk_score"
          ? asset.findings.length
          : scan.endMs;
    return compare(value, clause.op, clause.value);
  });
}

function riskScoreAt(asset: SimAsset, epoch: number): number {
  let risk = 0;
  for (const finding of asset.findings) {
    if (eventAt(finding, epoch)?.open) risk += finding.vulnerability.riskScore;
  }
  return Math.round(risk);
}

function matchesFilter(
  filter: VulnerabilityFilter,
  id: string,
  severity: string,
): boolean {
  if (filter.kind === "all") return true;
  if (filter.kind === "ids") return filter.ids.has(id);
  return filter.severities.has(severity);
}

function isAfter(id: string, afterId: string | null, descending: boolean) {
  if (afterId === null) return true;
  return descending ? compareIds(id, afterId) < 0 : compareIds(id, afterId) > 0;
}

function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
