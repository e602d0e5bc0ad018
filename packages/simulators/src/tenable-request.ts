import type { FindingFilter, FindingStateName } from "./tenable-dataset.ts";

/** A validated `POST /vulns/export` body. */
export interface ExportRequest {
  /** Assets per chunk after clamping to 50-5000. */
  numAssets: number;
  includeUnlicensed: boolean;
  filter: FindingFilter;
  /** The filters as the status endpoint echoes them. */
  filtersEcho: Record<string, unknown>;
  /** Equal for two requests Tenable treats as duplicates. */
  duplicateKey: string;
}

/** A request the API rejects with HTTP 400. */
export class BadExportRequest extends Error {}

const STATES: readonly FindingStateName[] = ["OPEN", "REOPENED", "FIXED"];
const SEVERITIES = ["info", "low", "medium", "high", "critical"];
const MIN_ASSETS = 50;
const MAX_ASSETS = 5000;

/**
 * Parses an export request body. Follows the vendor's documented rules:
 * num_assets defaults to 50 and is clamped to 50-5000, `since` is a
 * 10-digit epoch in seconds, state and severity values are
 * case-insensitive, and the default states are OPEN and REOPENED.
 */
export function parseExportRequest(text: string): ExportRequest {
  let body: unknown;
  try {
    body = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    throw new BadExportRequest("request body is not valid JSON");
  }
  if (!isObject(body)) throw new BadExportRequest("body must be an object");

  const numAssets = parseNumAssets(body.num_assets);
  const includeUnlicensed = body.include_unlicensed ?? false;
  if (typeof includeUnlicensed !== "boolean") {
    throw new BadExportRequest("include_unlicensed must be a boolean");
  }
  const filters = body.filters ?? {};
  if (!isObject(filters)) {
    throw new BadExportRequest("filters must be an object");
  }

  const sinceSeconds = parseSince(filters.since);
  const states = parseNames(filters.state, "state", STATES, (value) =>
    value.toUpperCase(),
  );
  const severities = parseNames(
    filters.severity,
    "severity",
    SEVERITIES,
    (value) => value.toLowerCase(),
  );
  const stateSet = new Set<FindingStateName>(states ?? ["OPEN", "REOPENED"]);
  const filtersEcho = {
    ...filters,
    state: [...stateSet],
    ...(severities ? { severity: severities } : {}),
    since: sinceSeconds ?? 0,
    first_found: 0,
    last_found: 0,
    last_fixed: 0,
    first_seen: 0,
    last_seen: 0,
    indexed_at: 0,
  };
  return {
    numAssets,
    includeUnlicensed,
    filter: {
      sinceMs: sinceSeconds === null ? null : sinceSeconds * 1000,
      states: stateSet,
      severities: severities ? new Set(severities) : null,
    },
    filtersEcho,
    duplicateKey: JSON.stringify([
      numAssets,
      includeUnlicensed,
      sortKeys(filtersEcho),
    ]),
  };
}

function parseNumAssets(value: unknown): number {
  if (value === undefined) return MIN_ASSETS;
  // The recorded 2018 exchange sent "50" as a string and was accepted.
  const number =
    typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number)) {
    throw new BadExportRequest(
      `num_assets must be an integer, got ${JSON.stringify(value)}`,
    );
  }
  return Math.min(MAX_ASSETS, Math.max(MIN_ASSETS, number));
}

function parseSince(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > 9_999_999_999
  ) {
    throw new BadExportRequest(
      "filters.since must be a 10-digit Unix time in seconds, got " +
        JSON.stringify(value),
    );
  }
  return value;
}

function parseNames<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
  normalise: (value: string) => string,
): T[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) {
    throw new BadExportRequest(`filters.${field} must be an array`);
  }
  const names: T[] = [];
  for (const item of value) {
    const name = typeof item === "string" ? normalise(item) : "";
    if (!(allowed as readonly string[]).includes(name)) {
      throw new BadExportRequest(
        `filters.${field}: invalid value ${JSON.stringify(item)}`,
      );
    }
    if (!names.includes(name as T)) names.push(name as T);
  }
  return names;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return [...value].map(sortKeys).sort();
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys(value[key])]),
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
