import { VulnsubError } from "@vulnsub/shared";
import { z } from "zod";

/**
 * Parsers for the small JSON bodies of Tenable's vulns export API: the
 * create response, the status object, the duplicate-export 409 body and
 * the job list. Each narrows unknown JSON and throws
 * vendor_response_invalid naming the field. Only the fields the adapter
 * uses are required, because the 2018 status objects carry only status and
 * the three chunk lists while current ones carry a dozen fields.
 */

export type TenableExportStatusName =
  | "QUEUED"
  | "PROCESSING"
  | "FINISHED"
  | "CANCELLED"
  | "ERROR";

export interface TenableExportStatus {
  status: TenableExportStatusName;
  /** In the order the vendor lists them: not sorted, possibly gapped. */
  chunksAvailable: number[];
  chunksFailed: number[];
  chunksCancelled: number[];
  totalChunks: number | null;
  /** Epoch milliseconds when the vendor created the export. */
  created: number | null;
  /** Failure reason, on ERROR and on FINISHED with failed chunks. */
  reason: string | null;
}

export interface TenableExportSummary {
  uuid: string;
  status: TenableExportStatusName;
  /** The `since` filter in epoch seconds; 0 when unset. */
  since: number;
  states: string[];
  numAssetsPerChunk: number | null;
  created: number | null;
}

const statusName = z.enum([
  "QUEUED",
  "PROCESSING",
  "FINISHED",
  "CANCELLED",
  "ERROR",
]);
const chunkIds = z.array(z.number().int().positive());

const createdSchema = z.looseObject({ export_uuid: z.string().min(1) });

const statusSchema = z.looseObject({
  status: statusName,
  chunks_available: chunkIds,
  chunks_failed: chunkIds.optional(),
  chunks_cancelled: chunkIds.optional(),
  total_chunks: z.number().int().nonnegative().optional(),
  created: z.number().int().nonnegative().optional(),
  reason: z.string().nullish(),
});

const conflictSchema = z.looseObject({
  active_job_id: z.string().min(1),
  failure_reason: z.string().optional(),
});

const jobsSchema = z.looseObject({
  exports: z.array(
    z.looseObject({
      uuid: z.string().min(1),
      status: statusName,
      filters: z
        .looseObject({
          since: z.number().int().nonnegative().optional(),
          state: z.array(z.string()).optional(),
        })
        .optional(),
      num_assets_per_chunk: z.number().int().positive().optional(),
      created: z.number().int().nonnegative().optional(),
    }),
  ),
});

/** Parses `POST /vulns/export` 200: returns the export uuid. */
export function parseExportCreated(value: unknown): string {
  return check(createdSchema, value, "tenable export request").export_uuid;
}

/** Parses `GET /vulns/export/{uuid}/status`. */
export function parseExportStatus(
  value: unknown,
  label = "tenable export status",
): TenableExportStatus {
  const body = check(statusSchema, value, label);
  return {
    status: body.status,
    chunksAvailable: body.chunks_available,
    chunksFailed: body.chunks_failed ?? [],
    chunksCancelled: body.chunks_cancelled ?? [],
    totalChunks: body.total_chunks ?? null,
    created: body.created ?? null,
    reason: body.reason ?? null,
  };
}

/** Parses the 409 body of a duplicate export: returns active_job_id. */
export function parseExportConflict(value: unknown): string {
  return check(conflictSchema, value, "tenable export conflict").active_job_id;
}

/** Parses `GET /vulns/export/status`, the list of recent export jobs. */
export function parseExportJobs(value: unknown): TenableExportSummary[] {
  const body = check(jobsSchema, value, "tenable export list");
  return body.exports.map((job) => ({
    uuid: job.uuid,
    status: job.status,
    since: job.filters?.since ?? 0,
    states: job.filters?.state ?? ["OPEN", "REOPENED"],
    numAssetsPerChunk: job.num_assets_per_chunk ?? null,
    created: job.created ?? null,
  }));
}

/**
 * Validates `value` against `schema` or throws vendor_response_invalid
 * whose message starts with `label` and names the first bad field.
 */
export function check<T>(
  schema: z.ZodType<T>,
  value: unknown,
  label: string,
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? formatPath(issue.path) : "(root)";
  throw new VulnsubError(
    "vendor_response_invalid",
    `${label}: ${field}: ${issue?.message ?? "invalid"}`,
    { context: { vendor: "tenable", field } },
  );
}

/** Formats a zod issue path as `asset.ipv4[1]`, or "(root)" when empty. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? String(part) : `.${String(part)}`;
  }
  return text === "" ? "(root)" : text;
}
