/**
 * The subset of InsightVM search criteria the simulator understands. The
 * Cloud Integration API documents no full grammar, so this accepts the
 * forms integrations send and rejects everything else with the vendor's
 * 400 message:
 * - asset: clauses joined by AND, each `<field> <op> <value>` with a date
 *   field (last_scan_end, last_scan_start, last_assessed_for_vulnerabilities)
 *   and an ISO 8601 time, or risk_score and a number; op is >, >=, <, <=, =;
 * - vulnerability: `id IN ['a', 'b']`, `id = 'a'`, or
 *   `severity IN ['Critical', 'Severe']`.
 */

export type AssetField =
  | "last_scan_end"
  | "last_scan_start"
  | "last_assessed_for_vulnerabilities"
  | "risk_score";

export type Comparison = ">" | ">=" | "<" | "<=" | "=";

export interface AssetClause {
  field: AssetField;
  op: Comparison;
  /** Epoch milliseconds for date fields, the number for risk_score. */
  value: number;
}

export type VulnerabilityFilter =
  | { kind: "all" }
  | { kind: "ids"; ids: Set<string> }
  | { kind: "severities"; severities: Set<string> };

/** Thrown for criteria the simulator cannot parse; becomes a 400. */
export class CriteriaError extends Error {}

export function parseAssetCriteria(text: string | undefined): AssetClause[] {
  if (text === undefined || text.trim() === "") return [];
  return text.split(/\s+AND\s+/i).map((clause) => parseClause(clause, text));
}

export function parseVulnerabilityCriteria(
  text: string | undefined,
): VulnerabilityFilter {
  if (text === undefined || text.trim() === "") return { kind: "all" };
  const match = /^\s*(id|severity)\s+(IN|=)\s+(.+?)\s*$/i.exec(text);
  if (!match) throw invalid("vulnerability", text);
  const field = (match[1] as string).toLowerCase();
  const values =
    (match[2] as string).toUpperCase() === "IN"
      ? parseList(match[3] as string, text)
      : [parseQuoted(match[3] as string, text)];
  if (field === "id") return { kind: "ids", ids: new Set(values) };
  const severities = new Set(values.map((value) => value.toLowerCase()));
  return { kind: "severities", severities };
}

export function compare(left: number, op: Comparison, right: number): boolean {
  switch (op) {
    case ">":
      return left > right;
    case ">=":
      return left >= right;
    case "<":
      return left < right;
    case "<=":
      return left <= right;
    case "=":
      return left === right;
  }
}

/** The message Rapid7 returns for a query it cannot parse. */
export function invalidQueryMessage(kind: string, text: string): string {
  return (
    "Your query string format is not valid. It has 1 error: Unable to " +
    `parse query: ${text} due to The query ${text} seems to be invalid ` +
    `format: ${kind} criteria`
  );
}

const DATE_FIELDS = new Set([
  "last_scan_end",
  "last_scan_start",
  "last_assessed_for_vulnerabilities",
]);

function parseClause(clause: string, whole: string): AssetClause {
  const match = /^\s*([a-z_]+)\s*(>=|<=|>|<|=)\s*(.+?)\s*$/.exec(clause);
  if (!match) throw invalid("asset", whole);
  const field = match[1] as string;
  const op = match[2] as Comparison;
  const raw = unquote(match[3] as string);
  if (DATE_FIELDS.has(field)) {
    const value = parseIsoTime(raw);
    if (value === null) throw invalid("asset", whole);
    return { field: field as AssetField, op, value };
  }
  if (field === "risk_score" && /^-?\d+(\.\d+)?$/.test(raw)) {
    return { field, op, value: Number(raw) };
  }
  throw invalid("asset", whole);
}

function parseList(text: string, whole: string): string[] {
  const match = /^\[(.*)\]$/.exec(text.trim());
  if (!match) throw invalid("vulnerability", whole);
  const items = (match[1] as string).split(",").map((item) => item.trim());
  return items.map((item) => parseQuoted(item, whole));
}

function parseQuoted(text: string, whole: string): string {
  const match = /^'([^']*)'$/.exec(text.trim());
  if (!match) throw invalid("vulnerability", whole);
  return match[1] as string;
}

function unquote(text: string): string {
  const match = /^'([^']*)'$/.exec(text);
  return match ? (match[1] as string) : text;
}

/** Epoch milliseconds of an ISO 8601 date-time with a zone, else null. */
export function parseIsoTime(text: string): number | null {
  const pattern =
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
  if (!pattern.test(text)) return null;
  const value = Date.parse(text);
  return Number.isFinite(value) ? value : null;
}

function invalid(kind: string, text: string): CriteriaError {
  return new CriteriaError(invalidQueryMessage(kind, text));
}
