import type { IncomingMessage, ServerResponse } from "node:http";
import type { FaultSettings, Random, ServedVersion } from "./common.ts";
import {
  statusAt,
  statusBody,
  type ExportJob,
  type ExportStore,
} from "./tenable-exports.ts";
import { BadExportRequest, parseExportRequest } from "./tenable-request.ts";
import {
  readRequestBody,
  sendError,
  sendJson,
  sendRateLimited,
  streamChunkBody,
  type ChunkFault,
} from "./tenable-responses.ts";
import { servedVersionOf } from "./tenable-wire.ts";

/** Mutable simulator state the routes read and update. */
export interface TenableRouteState {
  faults: FaultSettings;
  faultsInjected: Record<string, number>;
  chunksServed: number;
}

export interface TenableRouteOptions {
  exports: ExportStore;
  clock: () => number;
  credentials: { accessKey: string; secretKey: string };
  faultRandom: Random;
  state: TenableRouteState;
  /** Receives the versions of a chunk body written whole and fault-free. */
  onCleanChunk(versions: ServedVersion[]): void;
}

const MAX_REQUEST_BODY_BYTES = 1024 * 1024;
const STATUS_PATH = /^\/vulns\/export\/([0-9a-f-]{36})\/status$/;
const CHUNK_PATH = /^\/vulns\/export\/([0-9a-f-]{36})\/chunks\/([^/]+)$/;
const CANCEL_PATH = /^\/vulns\/export\/([0-9a-f-]{36})\/cancel$/;
const DUPLICATE_REASON =
  "The request could not be completed due to a conflict with the " +
  "ongoing export";

/**
 * Creates the vulns export API routes. Each request first meets the
 * API-wide faults (a throttle 429 or a 503), then the X-ApiKeys check.
 */
export function createTenableRoutes(options: TenableRouteOptions) {
  const { exports, state } = options;

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL) {
    if (inject("throttle", state.faults.throttleRate)) {
      return sendRateLimited(res, 1);
    }
    if (inject("serverError", state.faults.serverErrorRate)) {
      return sendError(res, 503, "The service is temporarily unavailable");
    }
    if (!isAuthorized(req.headers["x-apikeys"], options.credentials)) {
      return sendError(res, 401, "Invalid Credentials");
    }

    const path = url.pathname.replace(/\/+$/, "");
    const method = req.method ?? "GET";
    if (path === "/vulns/export" && method === "POST") {
      return createExport(req, res);
    }
    if (path === "/vulns/export/status" && method === "GET") {
      return sendJson(res, 200, { exports: exports.list().map(summaryOf) });
    }
    let match = STATUS_PATH.exec(path);
    if (match && method === "GET") return sendStatus(res, match[1] as string);
    match = CHUNK_PATH.exec(path);
    if (match && method === "GET") {
      return sendChunk(res, match[1] as string, match[2] as string);
    }
    match = CANCEL_PATH.exec(path);
    if (match && method === "POST") return cancel(res, match[1] as string);
    sendError(res, 404, `no route ${method} ${path}`);
  }

  async function createExport(req: IncomingMessage, res: ServerResponse) {
    const text = await readRequestBody(req, MAX_REQUEST_BODY_BYTES);
    if (text === null) return sendError(res, 413, "request body too large");
    let request;
    try {
      request = parseExportRequest(text);
    } catch (error) {
      if (!(error instanceof BadExportRequest)) throw error;
      return sendError(res, 400, error.message);
    }

    const fail = chance(state.faults.exportErrorRate);
    const outcome = exports.create(request, fail);
    if (outcome.kind === "duplicate") {
      return sendJson(res, 409, {
        active_job_id: outcome.activeJobId,
        failure_reason: DUPLICATE_REASON,
      });
    }
    if (outcome.kind === "busy") {
      return sendError(
        res,
        429,
        "Too many concurrent vulnerability exports; retry later",
        { "retry-after": String(outcome.retryAfterSeconds) },
      );
    }
    if (fail) count("exportError");
    sendJson(res, 200, { export_uuid: outcome.job.uuid });
  }

  function sendStatus(res: ServerResponse, uuid: string) {
    const job = exports.find(uuid);
    if (!job) return sendError(res, 404, `export ${uuid} not found`);
    sendJson(res, 200, statusBody(job, options.clock()));
  }

  async function sendChunk(res: ServerResponse, uuid: string, idText: string) {
    if (!/^\d+$/.test(idText)) {
      return sendError(res, 400, `invalid chunk id ${idText}`);
    }
    const outcome = exports.chunk(uuid, Number(idText));
    if (outcome.kind === "not_found") {
      const detail = outcome.reason === "expired" ? "expired" : "not found";
      return sendError(res, 404, `export ${uuid} chunk ${idText} ${detail}`);
    }
    if (outcome.kind === "not_ready") {
      return sendError(res, 400, `export ${uuid} chunk ${idText} is not ready`);
    }

    const fault = drawChunkFault();
    state.chunksServed++;
    const clean = await streamChunkBody(res, outcome.chunk.findings, {
      fault,
      slowMs: state.faults.slowMs,
      filename: `${uuid}-${idText}-vulndoc.json`,
    });
    if (!clean) return;
    options.onCleanChunk(outcome.chunk.findings.map(servedVersionOf));
  }

  function cancel(res: ServerResponse, uuid: string) {
    const job = exports.cancel(uuid);
    if (!job) return sendError(res, 404, `export ${uuid} not found`);
    sendJson(res, 200, { status: statusAt(job, options.clock()) });
  }

  function summaryOf(job: ExportJob) {
    const {
      chunks_available: _available,
      chunks_failed: _failed,
      chunks_cancelled: _cancelled,
      ...summary
    } = statusBody(job, options.clock());
    return summary;
  }

  function drawChunkFault(): ChunkFault {
    const faults = state.faults;
    if (inject("slow", faults.slowRate)) return "slow";
    if (inject("reset", faults.resetRate)) return "reset";
    if (inject("truncate", faults.truncateRate)) return "truncate";
    if (inject("malformed", faults.malformedRate)) return "malformed";
    return "none";
  }

  function inject(name: string, probability: number): boolean {
    if (!chance(probability)) return false;
    count(name);
    return true;
  }

  function chance(probability: number): boolean {
    return probability > 0 && options.faultRandom.chance(probability);
  }

  function count(name: string) {
    state.faultsInjected[name] = (state.faultsInjected[name] ?? 0) + 1;
  }

  return { handle };
}

/**
 * Checks an X-ApiKeys header: `accessKey=...;secretKey=...`, with optional
 * spaces after the semicolon (pyTenable sends one).
 */
export function isAuthorized(
  header: string | string[] | undefined,
  expected: { accessKey: string; secretKey: string },
): boolean {
  if (typeof header !== "string") return false;
  const pairs = new Map<string, string>();
  for (const part of header.split(";")) {
    const text = part.trim();
    if (text === "") continue;
    const eq = text.indexOf("=");
    if (eq <= 0) return false;
    pairs.set(text.slice(0, eq), text.slice(eq + 1));
  }
  return (
    pairs.size === 2 &&
    pairs.get("accessKey") === expected.accessKey &&
    pairs.get("secretKey") === expected.secretKey
  );
}
