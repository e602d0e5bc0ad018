import {
  DETECTION_STATUSES,
  type DetectionStatus,
  type QualysDetection,
  type QualysHost,
} from "./qualys-dataset.ts";

/**
 * Request parameters of the simulated Host List Detection API, validated
 * like Qualys does: an unknown name is rejected with SIMPLE_RETURN 1901, a
 * missing action with 1903, and a bad value with 1905.
 */
export interface DetectionQuery {
  truncationLimit: number;
  idMin: number | null;
  idMax: number | null;
  /** Host IDs and ranges from `ids`; null means every host. */
  ids: [number, number][] | null;
  qids: Set<number> | null;
  statuses: Set<DetectionStatus>;
  severities: Set<number>;
  /** Epoch ms; only detections processed strictly after it. */
  processedAfterMs: number | null;
  processedBeforeMs: number | null;
  showResults: boolean;
  showIgs: boolean;
  showQds: boolean;
  showQdsFactors: boolean;
}

export type QueryResult =
  | { ok: true; query: DetectionQuery }
  | { ok: false; code: number; text: string };

const KNOWN_PARAMETERS = new Set([
  "action",
  "echo_request",
  "output_format",
  "truncation_limit",
  "id_min",
  "id_max",
  "ids",
  "qids",
  "status",
  "severities",
  "detection_processed_after",
  "detection_processed_before",
  "show_results",
  "show_igs",
  "show_qds",
  "show_qds_factors",
]);

// NOTE: the real maximum truncation_limit is not documented in the material
// read; 1,000,000 lets a benchmark ask for a very large page.
const MAX_TRUNCATION_LIMIT = 1_000_000;

/** Validates `params` (query string and form body merged). */
export function parseDetectionQuery(
  params: URLSearchParams,
  defaultTruncationLimit: number,
): QueryResult {
  const unknown = [...new Set(params.keys())].filter(
    (name) => !KNOWN_PARAMETERS.has(name),
  );
  if (unknown.length > 0) {
    return fail(1901, `Unrecognized parameter(s): ${unknown.join(", ")}`);
  }
  const action = params.get("action");
  if (action === null)
    return fail(1903, "Missing required parameter(s): action");
  try {
    if (action !== "list") invalid("action", action, "expected list");
    return { ok: true, query: readQuery(params, defaultTruncationLimit) };
  } catch (error) {
    if (error instanceof InvalidValue) return fail(1905, error.message);
    throw error;
  }
}

/** Returns the host's detections the query selects, in QID order. */
export function selectDetections(
  host: QualysHost,
  query: DetectionQuery,
): QualysDetection[] {
  return host.detections.filter((detection) => {
    if (detection.type === "Info" && !query.showIgs) return false;
    if (!query.statuses.has(detection.status)) return false;
    if (!query.severities.has(detection.severity)) return false;
    if (query.qids && !query.qids.has(detection.qid)) return false;
    const processedMs = Date.parse(detection.lastProcessed);
    if (
      query.processedAfterMs !== null &&
      processedMs <= query.processedAfterMs
    ) {
      return false;
    }
    if (
      query.processedBeforeMs !== null &&
      processedMs >= query.processedBeforeMs
    ) {
      return false;
    }
    return true;
  });
}

/** True when the query's host filters (id_min, id_max, ids) keep `hostId`. */
export function hostSelected(hostId: number, query: DetectionQuery): boolean {
  if (query.idMin !== null && hostId < query.idMin) return false;
  if (query.idMax !== null && hostId > query.idMax) return false;
  if (!query.ids) return true;
  return query.ids.some(([low, high]) => hostId >= low && hostId <= high);
}

class InvalidValue extends Error {}

function readQuery(
  params: URLSearchParams,
  defaultLimit: number,
): DetectionQuery {
  const format = params.get("output_format");
  if (format !== null && format !== "XML") {
    invalid("output_format", format, "this simulator serves XML only");
  }
  return {
    truncationLimit:
      readInteger(params, "truncation_limit", 1, MAX_TRUNCATION_LIMIT) ??
      defaultLimit,
    idMin: readInteger(params, "id_min", 1, Number.MAX_SAFE_INTEGER),
    idMax: readInteger(params, "id_max", 1, Number.MAX_SAFE_INTEGER),
    ids: readRanges(params, "ids"),
    qids: readQids(params),
    statuses: readStatuses(params),
    severities: readSeverities(params),
    processedAfterMs: readDate(params, "detection_processed_after"),
    processedBeforeMs: readDate(params, "detection_processed_before"),
    showResults: readFlag(params, "show_results", true),
    showIgs: readFlag(params, "show_igs", false),
    showQds: readFlag(params, "show_qds", false),
    showQdsFactors: readFlag(params, "show_qds_factors", false),
  };
}

function readInteger(
  params: URLSearchParams,
  name: string,
  min: number,
  max: number,
): number | null {
  const raw = params.get(name);
  if (raw === null) return null;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    invalid(name, raw, `expected an integer from ${min} to ${max}`);
  }
  return value;
}

function readRanges(params: URLSearchParams, name: string) {
  const raw = params.get(name);
  if (raw === null) return null;
  return raw.split(",").map((part): [number, number] => {
    const match = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!match) {
      invalid(name, raw, `neither a positive integer nor a range: ${part}`);
    }
    const low = Number(match[1]);
    return [low, match[2] === undefined ? low : Number(match[2])];
  });
}

function readQids(params: URLSearchParams): Set<number> | null {
  const ranges = readRanges(params, "qids");
  if (!ranges) return null;
  const qids = new Set<number>();
  for (const [low, high] of ranges) {
    if (high - low > 1_000_000)
      invalid("qids", params.get("qids"), "range too large");
    for (let qid = low; qid <= high; qid++) qids.add(qid);
  }
  return qids;
}

function readStatuses(params: URLSearchParams): Set<DetectionStatus> {
  const raw = params.get("status");
  if (raw === null) return new Set(DETECTION_STATUSES);
  const statuses = new Set<DetectionStatus>();
  for (const part of raw.split(",")) {
    const status = DETECTION_STATUSES.find((known) => known === part.trim());
    if (!status) invalid("status", raw, `unknown status ${part}`);
    statuses.add(status);
  }
  return statuses;
}

function readSeverities(params: URLSearchParams): Set<number> {
  const ranges = readRanges(params, "severities") ?? [[1, 5]];
  const severities = new Set<number>();
  for (const [low, high] of ranges) {
    if (low < 1 || high > 5 || low > high) {
      invalid("severities", params.get("severities"), "expected 1-5");
    }
    for (let severity = low; severity <= high; severity++)
      severities.add(severity);
  }
  return severities;
}

// Qualys takes YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC) for date filters.
function readDate(params: URLSearchParams, name: string): number | null {
  const raw = params.get(name);
  if (raw === null) return null;
  const match = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$/.exec(raw);
  const ms = Date.parse(match && !match[1] ? `${raw}T00:00:00Z` : raw);
  if (!match || Number.isNaN(ms)) {
    invalid(name, raw, "expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
  }
  return ms;
}

function readFlag(params: URLSearchParams, name: string, fallback: boolean) {
  const raw = params.get(name);
  if (raw === null) return fallback;
  if (raw !== "0" && raw !== "1") invalid(name, raw, "expected 0 or 1");
  return raw === "1";
}

function invalid(name: string, value: string | null, reason: string): never {
  throw new InvalidValue(
    `parameter ${name} has invalid value: ${value} (${reason})`,
  );
}

function fail(code: number, text: string): QueryResult {
  return { ok: false, code, text };
}
