import {
  VulnsubError,
  tenableFindingKey,
  tenableFindingVersion,
  type FindingEnvelope,
  type FindingState,
  type Severity,
} from "@vulnsub/shared";
import { z } from "zod";
import type { AdapterRecord } from "../adapter.ts";
import { BodyReadError } from "./tenable-api.ts";
import { formatPath } from "./tenable-export-parsers.ts";

/**
 * Parses a vulns export chunk (a JSON array of findings) and maps each
 * finding to the common envelope. The whole chunk is validated before any
 * record is returned, so a chunk with one bad finding yields nothing.
 * Tenable leaves empty attributes out of chunks, so only the fields the
 * envelope needs are required, and `raw` keeps the finding unchanged.
 */

export interface ChunkLocation {
  exportUuid: string;
  chunkId: number;
}

/** One validated finding: the envelope without source and observedAt. */
export interface TenableFinding {
  findingKey: string;
  version: string;
  fields: Omit<FindingEnvelope, "source" | "observedAt">;
}

const STATES: Readonly<Record<string, FindingState>> = {
  OPEN: "open",
  REOPENED: "reopened",
  FIXED: "fixed",
};
const SEVERITIES: readonly Severity[] = [
  "info",
  "low",
  "medium",
  "high",
  "critical",
];
const RFC3339 =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

const stringOrList = z.union([z.string(), z.array(z.string())]).nullish();
const timestamp = z
  .string()
  .refine((text) => RFC3339.test(text) && Number.isFinite(Date.parse(text)), {
    message: "expected an RFC 3339 date-time",
  })
  .nullish();

const findingSchema = z.looseObject({
  asset: z.looseObject({
    uuid: z.string().min(1),
    hostname: z.string().nullish(),
    fqdn: stringOrList,
    ipv4: stringOrList,
    ipv6: stringOrList,
  }),
  plugin: z.looseObject({
    id: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]),
    name: z.string().nullish(),
    cve: z.array(z.string()).nullish(),
  }),
  port: z
    .looseObject({
      port: z.number().int().min(0).max(65535).nullish(),
      protocol: z.string().nullish(),
    })
    .nullish(),
  severity: z
    .string()
    .refine((text) => SEVERITIES.includes(text.toLowerCase() as Severity), {
      message: `expected one of ${SEVERITIES.join(", ")}`,
    })
    .nullish(),
  severity_id: z.number().int().min(0).max(4).nullish(),
  state: z.string().refine((text) => text.toUpperCase() in STATES, {
    message: "expected OPEN, REOPENED or FIXED",
  }),
  first_found: timestamp,
  last_found: timestamp,
  last_fixed: timestamp,
  finding_id: z.string().min(1).nullish(),
});

/**
 * Parses a chunk body. Throws BodyReadError (retryable) when the text is
 * not JSON, as with a truncated or garbled download, and
 * vendor_response_invalid naming the export, chunk, finding and field when
 * the JSON does not have the expected types.
 */
export function parseTenableChunk(
  text: string,
  where: ChunkLocation,
): TenableFinding[] {
  const label = `tenable export ${where.exportUuid} chunk ${where.chunkId}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new BodyReadError(
      `${label}: invalid JSON in ${text.length} characters: ` +
        messageOf(error),
      true,
      error,
    );
  }
  if (!Array.isArray(body)) {
    throw invalidFinding(where, `${label}: (root)`, "expected a JSON array");
  }
  return body.map((item, index) => parseFinding(item, index, where, label));
}

/** Builds the log line of one finding. */
export function toTenableRecord(
  finding: TenableFinding,
  source: string,
  observedAt: string,
): AdapterRecord {
  const { schemaVersion, vendor, findingKey, version, ...rest } =
    finding.fields;
  const envelope: FindingEnvelope = {
    schemaVersion,
    vendor,
    source,
    findingKey,
    version,
    observedAt,
    ...rest,
  };
  return {
    findingKey: finding.findingKey,
    version: finding.version,
    json: JSON.stringify(envelope),
  };
}

function parseFinding(
  raw: unknown,
  index: number,
  where: ChunkLocation,
  label: string,
): TenableFinding {
  const result = findingSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue ? formatPath(issue.path) : "(root)";
    throw invalidFinding(
      where,
      `${label}: finding ${index}: ${field}`,
      issue?.message ?? "invalid",
      field,
    );
  }

  const finding = result.data;
  const severity = severityOf(finding.severity, finding.severity_id);
  if (!severity) {
    throw invalidFinding(
      where,
      `${label}: finding ${index}: severity`,
      "missing: neither severity nor severity_id is present",
      "severity",
    );
  }
  const port = finding.port?.port ?? null;
  const protocol = finding.port?.protocol ?? null;
  const findingKey = tenableFindingKey({
    findingId: finding.finding_id,
    assetUuid: finding.asset.uuid,
    pluginId: finding.plugin.id,
    port,
    protocol,
  });
  // The version hashes the vendor's own texts, unnormalised, so a finding
  // re-exported unchanged keeps its version.
  const version = tenableFindingVersion({
    state: finding.state,
    lastFound: finding.last_found ?? null,
    lastFixed: finding.last_fixed ?? null,
  });

  return {
    findingKey,
    version,
    fields: {
      schemaVersion: 1,
      vendor: "tenable",
      findingKey,
      version,
      asset: {
        id: finding.asset.uuid,
        hostname: finding.asset.hostname ?? null,
        fqdn: firstOf(finding.asset.fqdn),
        ipv4: listOf(finding.asset.ipv4),
        ipv6: listOf(finding.asset.ipv6),
      },
      vulnerability: {
        id: String(finding.plugin.id),
        title: finding.plugin.name ?? null,
        cves: finding.plugin.cve ?? [],
        severity,
        vendorSeverity: finding.severity ?? stringOrNull(finding.severity_id),
      },
      state: STATES[finding.state.toUpperCase()] as FindingState,
      vendorState: finding.state,
      firstSeen: isoOrNull(finding.first_found),
      lastSeen: isoOrNull(finding.last_found),
      lastFixed: isoOrNull(finding.last_fixed),
      port,
      protocol,
      raw,
    },
  };
}

function severityOf(
  name: string | null | undefined,
  id: number | null | undefined,
): Severity | null {
  if (name) return name.toLowerCase() as Severity;
  if (id === null || id === undefined) return null;
  return SEVERITIES[id] ?? null;
}

function invalidFinding(
  where: ChunkLocation,
  prefix: string,
  message: string,
  field = "(root)",
) {
  return new VulnsubError("vendor_response_invalid", `${prefix}: ${message}`, {
    context: {
      vendor: "tenable",
      exportUuid: where.exportUuid,
      chunkId: where.chunkId,
      field,
    },
  });
}

function listOf(value: string | string[] | null | undefined): string[] {
  if (value === null || value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function firstOf(value: string | string[] | null | undefined): string | null {
  return listOf(value)[0] ?? null;
}

function isoOrNull(text: string | null | undefined): string | null {
  return text ? new Date(text).toISOString() : null;
}

function stringOrNull(value: number | null | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
