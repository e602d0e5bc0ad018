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
import {
  advanceQualysEpoch,
  createQualysDataset,
  formatQualysTime,
} from "./qualys-dataset.ts";
import { createQualysLimits } from "./qualys-limits.ts";
import { serveOverNodeHttp } from "./qualys-node-server.ts";
import { createDetectionPageStream, type BodyFault } from "./qualys-page.ts";
import { parseDetectionQuery } from "./qualys-params.ts";
import { createQualysResponses } from "./qualys-responses.ts";

/**
 * Qualys VMDR simulator: the Host List Detection API
 * (`/api/<2.0|3.0|4.0|5.0>/fo/asset/host/vm/detection/?action=list`, GET or
 * form-encoded POST) with Basic auth, the X-Requested-With header check,
 * parameter validation, truncation with WARNING 1980, per-subscription
 * rate and concurrency limits (409 with SIMPLE_RETURN 1965 / 1960) and
 * injected faults. Admin routes under /_sim/ need no auth and do not count
 * against the quota.
 */
export interface QualysSimulatorOptions {
  host?: string;
  port?: number;
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Default 300 requests per 3,600,000 ms, the values Qualys advertises. */
  rateLimit?: { requests: number; windowMs: number };
  /** Calls allowed to run at once (default 2). */
  concurrencyLimit?: number;
  faults?: Partial<FaultSettings>;
  /** Default username "demo", password "demo-password". */
  credentials?: { username: string; password: string };
  /** Share of detections with 100-500 KB RESULTS (default 0.002). */
  largeFindingRate?: number;
  /** RESULTS size of every other detection in bytes (default 40-400). */
  resultsBytes?: number;
  /** Hosts per page when truncation_limit is absent (default 1000). */
  defaultTruncationLimit?: number;
}

export type QuotaReport = ReturnType<QuotaAuditor["report"]>;

export interface QualysSimulatorCounters {
  quota: QuotaReport;
  requestsByStatus: Record<string, number>;
  faultsInjected: Record<string, number>;
  epoch: number;
  findings: number;
}

export interface QualysSimulatorHandle {
  vendor: "qualys";
  /** Base URL, for example http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  /** Finding versions served in complete, fault-free detection pages. */
  groundTruth(): ServedVersion[];
  counters(): QualysSimulatorCounters;
  setFaults(update: Partial<FaultSettings>): void;
  /** Applies one round of rescans; returns the new epoch number. */
  advanceEpoch(): number;
  stop(): Promise<void>;
}

const DETECTION_PATH =
  /^\/api\/(2\.0|3\.0|4\.0|5\.0)\/fo\/asset\/host\/vm\/detection\/?$/;
const DEFAULT_RATE_LIMIT = { requests: 300, windowMs: 3_600_000 };
const FAULT_THROTTLE_SECONDS = 1;

export async function startQualysSimulator(
  options: QualysSimulatorOptions,
): Promise<QualysSimulatorHandle> {
  const credentials = options.credentials ?? {
    username: "demo",
    password: "demo-password",
  };
  const rateLimit = options.rateLimit ?? DEFAULT_RATE_LIMIT;
  const dataset = createQualysDataset({
    seed: options.seed,
    assets: options.assets,
    findingsPerAsset: options.findingsPerAsset,
    largeFindingRate: options.largeFindingRate ?? 0.002,
    resultsBytes: options.resultsBytes,
  });
  const limits = createQualysLimits({
    ...rateLimit,
    concurrency: options.concurrencyLimit ?? 2,
  });
  const auditor = createQuotaAuditor(rateLimit.requests, rateLimit.windowMs);
  const groundTruth = createGroundTruth();
  const faultRandom = createRandom(options.seed ^ 0x5eed_fa17);
  const requestsByStatus: Record<string, number> = {};
  const faultsInjected: Record<string, number> = {};
  let faults = mergeFaults(NO_FAULTS, options.faults ?? {});
  let epoch = 0;

  const pair = `${credentials.username}:${credentials.password}`;
  const expectedAuth = `Basic ${Buffer.from(pair).toString("base64")}`;

  // Set once the server listens; page URLs and DTD links use it.
  let origin = "";
  const server = await serveOverNodeHttp({
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    handler: async (request) => {
      const url = new URL(request.url);
      if (url.pathname.startsWith("/_sim/")) return handleAdmin(request, url);
      const response = await handleApi(request, url);
      requestsByStatus[response.status] =
        (requestsByStatus[response.status] ?? 0) + 1;
      return response;
    },
  });
  origin = server.url;
  const responses = createQualysResponses(() => origin, limits);

  async function handleApi(request: Request, url: URL): Promise<Response> {
    const nowMs = Date.now();
    auditor.record(nowMs);
    const match = DETECTION_PATH.exec(url.pathname);
    if (!match) {
      return new Response("Not Found\n", {
        status: 404,
        headers: limits.headers(nowMs),
      });
    }

    if (request.headers.get("authorization") !== expectedAuth) {
      // NOTE: Qualys documents give the TEXT "Bad Login/Password" but not
      // the code number of this response, so 2000 is a stand-in.
      return responses.simpleReturn(401, 2000, "Bad Login/Password", nowMs);
    }
    if (!request.headers.get("x-requested-with")) {
      // NOTE: Qualys clients always send X-Requested-With. No Qualys
      // document read states that the API rejects calls without it, so
      // this check and its code (the missing-parameter 1903) are a guess.
      return responses.simpleReturn(
        400,
        1903,
        "Missing required header: X-Requested-With",
        nowMs,
      );
    }
    if (request.method !== "GET" && request.method !== "POST") {
      return responses.simpleReturn(
        400,
        1908,
        `Method ${request.method} is not allowed`,
        nowMs,
      );
    }

    const admit = limits.admit(nowMs);
    if (!admit.admitted) return responses.blocked(admit, nowMs);
    try {
      return await serveDetections(
        request,
        url,
        match[1] as string,
        admit.release,
        nowMs,
      );
    } catch (error) {
      admit.release();
      throw error;
    }
  }

  async function serveDetections(
    request: Request,
    url: URL,
    apiVersion: string,
    release: () => void,
    nowMs: number,
  ): Promise<Response> {
    const params = new URLSearchParams(url.search);
    if (request.method === "POST") {
      for (const [name, value] of new URLSearchParams(await request.text())) {
        params.append(name, value);
      }
    }
    const parsed = parseDetectionQuery(
      params,
      options.defaultTruncationLimit ?? 1000,
    );
    if (!parsed.ok) {
      release();
      return responses.simpleReturn(400, parsed.code, parsed.text, nowMs);
    }

    const throttled = drawThrottleFault(nowMs);
    if (throttled) {
      release();
      return throttled;
    }
    if (faultRandom.chance(faults.serverErrorRate)) {
      release();
      countFault("serverError");
      return responses.serviceUnavailable(nowMs);
    }
    if (faultRandom.chance(faults.slowRate)) {
      countFault("slow");
      await Bun.sleep(faults.slowMs);
    }
    const fault = drawBodyFault();

    const body = createDetectionPageStream({
      dataset,
      query: parsed.query,
      params,
      endpointUrl: `${origin}${url.pathname}`,
      origin,
      apiVersion,
      seed: options.seed,
      datetime: formatQualysTime(Date.now()),
      fault,
      faultRandom,
      onComplete: (versions) => groundTruth.add(versions),
      onFinish: release,
    });
    return new Response(body, {
      status: 200,
      headers: { "Content-Type": "application/xml", ...limits.headers(nowMs) },
    });
  }

  function drawThrottleFault(nowMs: number): Response | null {
    if (!faultRandom.chance(faults.throttleRate)) return null;
    countFault("throttle");
    if (faultRandom.chance(0.5)) {
      return responses.blocked(
        { admitted: false, code: 1960, callsToFinish: 1 },
        nowMs,
      );
    }
    return responses.blocked(
      { admitted: false, code: 1965, secondsToWait: FAULT_THROTTLE_SECONDS },
      nowMs,
    );
  }

  function drawBodyFault(): BodyFault | null {
    const candidates: [BodyFault, number][] = [
      ["reset", faults.resetRate],
      ["truncate", faults.truncateRate],
      ["malformed", faults.malformedRate],
    ];
    for (const [fault, rate] of candidates) {
      if (faultRandom.chance(rate)) {
        countFault(fault);
        return fault;
      }
    }
    return null;
  }

  async function handleAdmin(request: Request, url: URL): Promise<Response> {
    const route = `${request.method} ${url.pathname}`;
    if (route === "GET /_sim/ground-truth") {
      return Response.json({ vendor: "qualys", served: groundTruth.list() });
    }
    if (route === "GET /_sim/counters") return Response.json(counters());
    if (route === "POST /_sim/advance")
      return Response.json({ epoch: advanceEpoch() });
    if (route === "POST /_sim/faults") {
      try {
        faults = mergeFaults(faults, await request.json());
        return Response.json(faults);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return Response.json({ error: message }, { status: 400 });
      }
    }
    return Response.json(
      { error: `unknown admin route ${route}` },
      { status: 404 },
    );
  }

  function counters(): QualysSimulatorCounters {
    return {
      quota: auditor.report(),
      requestsByStatus: { ...requestsByStatus },
      faultsInjected: { ...faultsInjected },
      epoch,
      findings: dataset.detectionCount,
    };
  }

  function advanceEpoch(): number {
    epoch++;
    advanceQualysEpoch(
      dataset,
      options.seed,
      epoch,
      formatQualysTime(Date.now()),
    );
    return epoch;
  }

  function countFault(name: string) {
    faultsInjected[name] = (faultsInjected[name] ?? 0) + 1;
  }

  return {
    vendor: "qualys",
    url: origin,
    groundTruth: () => groundTruth.list(),
    counters,
    setFaults: (update) => {
      faults = mergeFaults(faults, update);
    },
    advanceEpoch,
    stop: () => server.stop(),
  };
}
