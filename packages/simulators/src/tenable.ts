import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import {
  createGroundTruth,
  createQuotaAuditor,
  createRandom,
  mergeFaults,
  NO_FAULTS,
  type FaultSettings,
  type QuotaAuditor,
  type ServedVersion,
} from "./common.ts";
import { createTenableDataset } from "./tenable-dataset.ts";
import { createExportStore } from "./tenable-exports.ts";
import {
  readRequestBody,
  sendError,
  sendJson,
  sendRateLimited,
} from "./tenable-responses.ts";
import { createTenableRoutes } from "./tenable-routes.ts";

/**
 * Tenable Vulnerability Management simulator of the vulns export API:
 * `POST /vulns/export`, `GET /vulns/export/{uuid}/status`,
 * `GET /vulns/export/{uuid}/chunks/{id}`, `POST /vulns/export/{uuid}/cancel`
 * and `GET /vulns/export/status`.
 *
 * It checks X-ApiKeys and enforces the per-key rate limit (429 with
 * retry-after and the nginx page) and the two-exports concurrency limit.
 * It returns 409 for a duplicate export, lists chunks progressively and out
 * of order, expires chunks and injects faults. Admin routes under /_sim/
 * need no auth and do not count against the quota.
 */
export interface TenableSimulatorOptions {
  host?: string;
  port?: number;
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Default 20 requests per 60 000 ms; over it the API returns 429. */
  rateLimit?: { requests: number; windowMs: number };
  /** Exports in QUEUED or PROCESSING at once (default 2, Tenable's). */
  maxConcurrentExports?: number;
  /** Life of a ready chunk in milliseconds (default 24 hours). */
  chunkTtlMs?: number;
  /** Time to process one chunk, in milliseconds (default 25). */
  processingDelayMs?: number;
  faults?: Partial<FaultSettings>;
  /** Default accessKey "demo-access", secretKey "demo-secret". */
  credentials?: { accessKey: string; secretKey: string };
  /** Share of findings with a 100-500 KB output (default 0.002). */
  largeFindingRate?: number;
  /** Epoch 0 finding times lie before it (default: start time). */
  baseTimeMs?: number;
  /** Clock in epoch milliseconds (default Date.now). */
  clock?: () => number;
}

export type TenableQuotaReport = ReturnType<QuotaAuditor["report"]>;

export interface TenableSimulatorCounters {
  quota: TenableQuotaReport;
  requestsByStatus: Record<string, number>;
  faultsInjected: Record<string, number>;
  epoch: number;
  findings: number;
  exports: {
    created: number;
    duplicates: number;
    rejectedBusy: number;
    cancelled: number;
    markedToFail: number;
    chunksExpired: number;
    chunksServed: number;
    active: number;
  };
}

export interface TenableSimulatorHandle {
  vendor: "tenable";
  /** Base URL, for example http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  /** Finding versions served in complete, fault-free chunk bodies. */
  groundTruth(): ServedVersion[];
  counters(): TenableSimulatorCounters;
  setFaults(update: Partial<FaultSettings>): void;
  /** Applies one round of rescans; returns the new epoch number. */
  advanceEpoch(): number;
  stop(): Promise<void>;
}

const DEFAULT_RATE_LIMIT = { requests: 20, windowMs: 60_000 };
const DEFAULT_CHUNK_TTL_MS = 24 * 3600_000;
const MAX_ADMIN_BODY_BYTES = 64 * 1024;

export async function startTenableSimulator(
  options: TenableSimulatorOptions,
): Promise<TenableSimulatorHandle> {
  const clock = options.clock ?? Date.now;
  const credentials = options.credentials ?? {
    accessKey: "demo-access",
    secretKey: "demo-secret",
  };
  const rateLimit = options.rateLimit ?? DEFAULT_RATE_LIMIT;
  const dataset = createTenableDataset({
    seed: options.seed,
    assets: options.assets,
    findingsPerAsset: options.findingsPerAsset,
    baseTimeMs: options.baseTimeMs ?? Math.floor(clock() / 1000) * 1000,
    largeFindingRate: options.largeFindingRate ?? 0.002,
  });
  const exports = createExportStore({
    dataset,
    random: createRandom(options.seed ^ 0x7e4ab1e),
    clock,
    maxConcurrentExports: options.maxConcurrentExports ?? 2,
    chunkTtlMs: options.chunkTtlMs ?? DEFAULT_CHUNK_TTL_MS,
    processingDelayMs: options.processingDelayMs ?? 25,
  });
  const auditor = createQuotaAuditor(rateLimit.requests, rateLimit.windowMs);
  const arrivals: number[] = [];
  const groundTruth = createGroundTruth();
  const requestsByStatus: Record<string, number> = {};
  const state = {
    faults: mergeFaults(NO_FAULTS, options.faults ?? {}),
    faultsInjected: {} as Record<string, number>,
    chunksServed: 0,
  };
  const routes = createTenableRoutes({
    exports,
    clock,
    credentials,
    faultRandom: createRandom(options.seed ^ 0x5eed_fa17),
    state,
    onCleanChunk: (versions) => groundTruth.add(versions),
  });

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, String(error));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.address.includes(":")
    ? `[${address.address}]`
    : address.address;

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://simulator.invalid");
    if (url.pathname.startsWith("/_sim/")) return handleAdmin(req, res, url);

    // "close" also fires for a response cut by a reset, unlike "finish".
    res.once("close", () => {
      const key = String(res.statusCode);
      requestsByStatus[key] = (requestsByStatus[key] ?? 0) + 1;
    });
    const nowMs = clock();
    arrivals.push(nowMs);
    while ((arrivals[0] ?? nowMs) <= nowMs - rateLimit.windowMs) {
      arrivals.shift();
    }
    if (!auditor.record(nowMs)) {
      return sendRateLimited(res, retryAfterSeconds(nowMs));
    }
    await routes.handle(req, res, url);
  }

  // Seconds until enough arrivals leave the window for one more request.
  // Rejected requests count too, as they do in the quota auditor.
  function retryAfterSeconds(nowMs: number): number {
    const oldestToLeave =
      arrivals[arrivals.length - rateLimit.requests] ?? nowMs;
    const waitMs = oldestToLeave + rateLimit.windowMs - nowMs;
    return Math.max(1, Math.ceil(waitMs / 1000));
  }

  async function handleAdmin(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ) {
    const route = `${req.method} ${url.pathname}`;
    if (route === "GET /_sim/ground-truth") {
      const served = groundTruth.list();
      return sendJson(res, 200, { vendor: "tenable", served });
    }
    if (route === "GET /_sim/counters") return sendJson(res, 200, counters());
    if (route === "POST /_sim/advance") {
      return sendJson(res, 200, { epoch: advanceEpoch() });
    }
    if (route === "POST /_sim/faults") {
      const text = await readRequestBody(req, MAX_ADMIN_BODY_BYTES);
      try {
        setFaults(JSON.parse(text ?? ""));
      } catch (error) {
        return sendError(res, 400, (error as Error).message);
      }
      return sendJson(res, 200, state.faults);
    }
    sendError(res, 404, `no admin route ${route}`);
  }

  function counters(): TenableSimulatorCounters {
    return {
      quota: auditor.report(),
      requestsByStatus: { ...requestsByStatus },
      faultsInjected: { ...state.faultsInjected },
      epoch: dataset.epoch,
      findings: dataset.findingCount,
      exports: {
        ...exports.counts(),
        chunksServed: state.chunksServed,
        active: exports.activeCount(),
      },
    };
  }

  function setFaults(update: unknown) {
    state.faults = mergeFaults(state.faults, update);
  }

  function advanceEpoch(): number {
    return dataset.advance(clock());
  }

  return {
    vendor: "tenable",
    url: `http://${host}:${address.port}`,
    groundTruth: () => groundTruth.list(),
    counters,
    setFaults,
    advanceEpoch,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
