import { VendorHttpError, VulnsubError } from "@vulnsub/shared";
import type { VendorHttp } from "../adapter.ts";
import {
  parseExportConflict,
  parseExportCreated,
  parseExportJobs,
  parseExportStatus,
  type TenableExportStatus,
} from "./tenable-export-parsers.ts";

/**
 * The calls of Tenable's vulns export API that the adapter makes. Each
 * goes through VendorHttp, so it waits for the shared rate limit and
 * retries 5xx and throttles there. This module adds what is specific to
 * exports: adopting the active export on a duplicate-request 409, and
 * reading chunk bodies under a size limit.
 */
export interface TenableExportRequest {
  num_assets: number;
  include_unlicensed: boolean;
  filters: { since: number; state: string[] };
}

export interface TenableApi {
  /** Creates an export, or adopts the active duplicate on a 409. */
  requestExport(
    request: TenableExportRequest,
  ): Promise<{ uuid: string; adopted: boolean }>;
  /** Throws VendorHttpError 404 when the export is unknown or expired. */
  getStatus(uuid: string): Promise<TenableExportStatus>;
  /**
   * Returns a chunk body as text. Throws VendorHttpError 404 for an
   * expired chunk, and BodyReadError when the body could not be read.
   */
  fetchChunk(uuid: string, chunkId: number): Promise<string>;
}

/** A chunk body that failed to arrive whole; a new download may work. */
export class BodyReadError extends VulnsubError {
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean, cause?: unknown) {
    super("vendor_response_invalid", message, {
      cause,
      context: { vendor: "tenable" },
    });
    this.name = "BodyReadError";
    this.retryable = retryable;
  }
}

const MAX_JSON_BYTES = 16 * 1024 * 1024;
const ACTIVE = new Set(["QUEUED", "PROCESSING"]);

export function createTenableApi(
  http: VendorHttp,
  options: { maxChunkBytes: number },
): TenableApi {
  async function requestExport(request: TenableExportRequest) {
    try {
      const response = await http.request({
        method: "POST",
        url: "/vulns/export",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
        operation: "export.create",
      });
      const body = await readJson(response, "export request");
      return { uuid: parseExportCreated(body), adopted: false };
    } catch (error) {
      if (!(error instanceof VendorHttpError) || error.status !== 409) {
        throw error;
      }
      const uuid = conflictJobId(error) ?? (await findDuplicate(request));
      if (!uuid) {
        throw new VulnsubError(
          "vendor_export_failed",
          "tenable export request: HTTP 409 without an active_job_id, " +
            "and no active export with the same filters was listed",
          { cause: error, context: { vendor: "tenable" } },
        );
      }
      return { uuid, adopted: true };
    }
  }

  async function getStatus(uuid: string) {
    const response = await http.request({
      method: "GET",
      url: `/vulns/export/${uuid}/status`,
      operation: "export.status",
    });
    const body = await readJson(response, `export ${uuid} status`);
    return parseExportStatus(body, `tenable export ${uuid} status`);
  }

  // Used only when the 409 body could not be read: the duplicate is the
  // newest active job with the same since, states and chunk size.
  async function findDuplicate(request: TenableExportRequest) {
    const response = await http.request({
      method: "GET",
      url: "/vulns/export/status",
      operation: "export.list",
    });
    const jobs = parseExportJobs(await readJson(response, "export list"));
    const states = normaliseStates(request.filters.state);
    const matches = jobs.filter(
      (job) =>
        ACTIVE.has(job.status) &&
        job.since === request.filters.since &&
        job.numAssetsPerChunk === request.num_assets &&
        normaliseStates(job.states) === states,
    );
    matches.sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
    return matches[0]?.uuid ?? null;
  }

  async function fetchChunk(uuid: string, chunkId: number) {
    const label = `tenable export ${uuid} chunk ${chunkId}`;
    const response = await http.request({
      method: "GET",
      url: `/vulns/export/${uuid}/chunks/${chunkId}`,
      operation: "export.chunk",
    });
    return readText(response, options.maxChunkBytes, label);
  }

  return { requestExport, getStatus, fetchChunk };
}

/**
 * Reads a body as UTF-8 under `maxBytes`. The declared length is checked
 * before reading, and the running size while reading, so an oversized
 * chunk is never buffered whole.
 */
export async function readText(
  response: Response,
  maxBytes: number,
  label: string,
): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge(label, declared, maxBytes);
  }
  if (!response.body) return "";

  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const parts: string[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw tooLarge(label, size, maxBytes);
      parts.push(decoder.decode(value, { stream: true }));
    }
    parts.push(decoder.decode());
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof BodyReadError) throw error;
    throw new BodyReadError(
      `${label}: body read failed after ${size} bytes: ${messageOf(error)}`,
      true,
      error,
    );
  }
  return parts.join("");
}

async function readJson(response: Response, what: string): Promise<unknown> {
  const label = `tenable ${what}`;
  const text = await readText(response, MAX_JSON_BYTES, label);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new VulnsubError(
      "vendor_response_invalid",
      `${label}: invalid JSON: ${messageOf(error)}`,
      { cause: error, context: { vendor: "tenable" } },
    );
  }
}

// VendorHttp keeps the 409 body in the error context as `body` when it
// can; without it the caller falls back to the export list.
function conflictJobId(error: VendorHttpError): string | null {
  const body = error.context.body;
  if (typeof body !== "string") return null;
  try {
    return parseExportConflict(JSON.parse(body));
  } catch {
    return null;
  }
}

function normaliseStates(states: readonly string[]): string {
  return [...new Set(states.map((state) => state.toUpperCase()))]
    .sort()
    .join(",");
}

function tooLarge(label: string, bytes: number, maxBytes: number) {
  return new BodyReadError(
    `${label}: body of ${bytes} bytes exceeds the limit of ${maxBytes} bytes`,
    false,
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
