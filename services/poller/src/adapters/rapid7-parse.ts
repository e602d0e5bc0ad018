import { VulnsubError } from "@vulnsub/shared";

/**
 * Narrowing of Rapid7 InsightVM Cloud Integration API v4 JSON into typed
 * values. Structural fields are checked strictly: `data` must be an array,
 * `metadata.cursor` a string or null, each asset needs a string `id`, each
 * finding a string `vulnerability_id`, and a present optional field must
 * have its documented type. Any violation throws vendor_response_invalid
 * naming `where` (vendor, request) and the JSON path, so the caller yields
 * nothing from that page. Values are kept as the vendor sent them; the
 * envelope builder decides how to read them.
 */

export interface Rapid7AssetPage {
  assets: Rapid7Asset[];
  /** Vendor cursor of the next page; null when absent or null. */
  cursor: string | null;
}

export type Rapid7List = "new" | "same" | "remediated";

export interface Rapid7Asset {
  id: string;
  hostName: string | null;
  /** `ip`, then each `addresses[].ip` when the asset has them. */
  addresses: string[];
  lastScanEnd: string | null;
  findings: Record<Rapid7List, Rapid7Finding[]>;
  /** The asset object without its new, same and remediated arrays. */
  raw: Record<string, unknown>;
}

export interface Rapid7Finding {
  vulnerabilityId: string;
  key: string | null;
  port: number | null;
  protocol: string | null;
  status: string | null;
  firstFound: string | null;
  lastFound: string | null;
  reintroduced: string | null;
  /** Not part of v4 findings as documented; read when a response has it. */
  severity: string | null;
  raw: Record<string, unknown>;
}

export interface Rapid7Definition {
  id: string;
  title: string | null;
  severity: string | null;
  /** The `cves` string split at commas (an array is accepted too). */
  cves: string[];
}

export interface Rapid7DefinitionPage {
  definitions: Rapid7Definition[];
  cursor: string | null;
}

export interface Rapid7ErrorBody {
  status: number | null;
  message: string;
}

export function parseRapid7AssetPage(
  value: unknown,
  where: string,
): Rapid7AssetPage {
  const data = readPageData(value, where);
  const assets = data.map((item, index) =>
    parseAsset(item, `data[${index}]`, where),
  );
  const cursor = readCursor(value as Record<string, unknown>, where);
  return { assets, cursor };
}

export function parseRapid7DefinitionPage(
  value: unknown,
  where: string,
): Rapid7DefinitionPage {
  const data = readPageData(value, where);
  const definitions = data.map((item, index) => {
    const path = `data[${index}]`;
    const object = expectObject(item, path, where);
    return {
      id: expectString(object.id, `${path}.id`, where),
      title: optionalString(object.title, `${path}.title`, where),
      severity: optionalString(object.severity, `${path}.severity`, where),
      cves: readCves(object.cves, `${path}.cves`, where),
    };
  });
  const cursor = readCursor(value as Record<string, unknown>, where);
  return { definitions, cursor };
}

/**
 * Reads a Rapid7 error body: the v4 Spring ErrorResource, the platform's
 * `{"message": "Unauthorized"}`, the v4 5xx body, or a console v3 error.
 */
export function parseRapid7ErrorBody(
  value: unknown,
  where: string,
): Rapid7ErrorBody {
  const object = expectObject(value, "(body)", where);
  const message = object.message ?? object.error;
  if (typeof message !== "string" || message === "") {
    throw invalid(where, "message: expected an error message string");
  }
  const status = Number(object.status);
  return { status: Number.isInteger(status) ? status : null, message };
}

function readPageData(value: unknown, where: string): unknown[] {
  const object = expectObject(value, "(body)", where);
  if (Array.isArray(object.resources) && object.data === undefined) {
    throw invalid(
      where,
      "got a Security Console API v3 page (resources, page), " +
        "expected a Cloud Integration API v4 page (data, metadata)",
    );
  }
  if (!Array.isArray(object.data)) {
    const detail =
      typeof object.message === "string"
        ? `, got an error body: ${object.message}`
        : `, got ${describe(object.data)}`;
    throw invalid(where, `data: expected an array${detail}`);
  }
  return object.data;
}

function readCursor(page: Record<string, unknown>, where: string) {
  if (page.metadata === undefined || page.metadata === null) return null;
  const metadata = expectObject(page.metadata, "metadata", where);
  const cursor = optionalString(metadata.cursor, "metadata.cursor", where);
  return cursor === "" ? null : cursor;
}

const LISTS: readonly Rapid7List[] = ["new", "same", "remediated"];

function parseAsset(value: unknown, path: string, where: string): Rapid7Asset {
  const object = expectObject(value, path, where);
  const id = expectString(object.id, `${path}.id`, where);
  if (id === "") {
    throw invalid(where, `${path}.id: expected a non-empty string`);
  }

  const findings = {} as Record<Rapid7List, Rapid7Finding[]>;
  for (const list of LISTS) {
    const items = object[list];
    if (items !== undefined && items !== null && !Array.isArray(items)) {
      throw invalid(
        where,
        `${path}.${list}: expected an array, got ${describe(items)}`,
      );
    }
    findings[list] = (items ?? []).map((item: unknown, index: number) =>
      parseFinding(item, `${path}.${list}[${index}]`, where),
    );
  }

  const { new: _new, same: _same, remediated: _remediated, ...raw } = object;
  return {
    id,
    hostName: optionalString(object.host_name, `${path}.host_name`, where),
    addresses: readAddresses(object, path, where),
    lastScanEnd: optionalString(
      object.last_scan_end,
      `${path}.last_scan_end`,
      where,
    ),
    findings,
    raw,
  };
}

function parseFinding(
  value: unknown,
  path: string,
  where: string,
): Rapid7Finding {
  const object = expectObject(value, path, where);
  const vulnerabilityId = expectString(
    object.vulnerability_id,
    `${path}.vulnerability_id`,
    where,
  );
  if (vulnerabilityId === "") {
    throw invalid(
      where,
      `${path}.vulnerability_id: expected a non-empty string`,
    );
  }
  const field = (name: string) =>
    optionalString(object[name], `${path}.${name}`, where);
  return {
    vulnerabilityId,
    key: field("key"),
    port: optionalInteger(object.port, `${path}.port`, where),
    protocol: field("protocol"),
    status: field("status"),
    firstFound: field("first_found"),
    lastFound: field("last_found"),
    reintroduced: field("reintroduced"),
    severity: field("severity"),
    raw: object,
  };
}

function readAddresses(
  asset: Record<string, unknown>,
  path: string,
  where: string,
): string[] {
  const addresses: string[] = [];
  const ip = optionalString(asset.ip, `${path}.ip`, where);
  if (ip) addresses.push(ip);
  if (asset.addresses === undefined || asset.addresses === null) {
    return addresses;
  }
  if (!Array.isArray(asset.addresses)) {
    throw invalid(where, `${path}.addresses: expected an array`);
  }
  asset.addresses.forEach((item: unknown, index: number) => {
    const entry = expectObject(item, `${path}.addresses[${index}]`, where);
    const address = optionalString(
      entry.ip,
      `${path}.addresses[${index}].ip`,
      where,
    );
    if (address) addresses.push(address);
  });
  return addresses;
}

function readCves(value: unknown, path: string, where: string): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  const cves: string[] = [];
  for (const item of items) {
    const text = expectString(item, path, where);
    for (const part of text.split(",")) {
      const cve = part.trim();
      if (cve !== "" && !cves.includes(cve)) cves.push(cve);
    }
  }
  return cves;
}

function expectObject(
  value: unknown,
  path: string,
  where: string,
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(where, `${path}: expected an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function expectString(value: unknown, path: string, where: string): string {
  if (typeof value !== "string") {
    throw invalid(where, `${path}: expected a string, got ${describe(value)}`);
  }
  return value;
}

function optionalString(
  value: unknown,
  path: string,
  where: string,
): string | null {
  if (value === undefined || value === null) return null;
  return expectString(value, path, where);
}

function optionalInteger(
  value: unknown,
  path: string,
  where: string,
): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(
      where,
      `${path}: expected an integer, got ${describe(value)}`,
    );
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  const excerpt = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return `${typeof value} ${excerpt}`;
}

function invalid(where: string, problem: string): VulnsubError {
  return new VulnsubError("vendor_response_invalid", `${where}: ${problem}`, {
    context: { vendor: "rapid7" },
  });
}
