import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import {
  NO_FAULTS,
  createGroundTruth,
  createQuotaAuditor,
  createRandom,
  mergeFaults,
  type FaultSettings,
  type ServedVersion,
} from "./common.ts";
import { createRapid7Dataset } from "./rapid7-dataset.ts";
import {
  ASSETS_PATH,
  VULNERABILITIES_PATH,
  errorReply,
  handleAssetSearch,
  handleVulnerabilitySearch,
  type ApiRequest,
  type Reply,
} from "./rapid7-routes.ts";
import { createFaultWriter, drawFault } from "./rapid7-faults.ts";

/**
 * Simulator of the Rapid7 InsightVM Cloud Integration API v4: the asset
 * search with embedded findings (new, same, remediated) and the
 * vulnerability search, with X-Api-Key auth, cursor paging, the Spring
 * ErrorResource error bodies and the platform's 401 body.
 *
 * Rapid7 documents no rate limit and no 429. The simulator returns 429
 * with Retry-After (seconds) when more than `rateLimit.requests` API
 * requests arrived within the last `rateLimit.windowMs`, counting every
 * arrival, rejected ones included. Admin routes under /_sim/ need no key
 * and are neither limited nor counted.
 */
export interface Rapid7SimulatorOptions {
  host?: string;
  port?: number;
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** API budget; default 20 requests per 60 000 ms. */
  rateLimit?: { requests: number; windowMs: number };
  faults?: Partial<FaultSettings>;
  /** Expected X-Api-Key; default "demo-rapid7-key". */
  apiKey?: string;
  /** Share of findings with a 100-500 KB proof; default 0.002. */
  largeFindingRate?: number;
  /** Largest `size` accepted; default 500, the documented maximum. */
  maxPageSize?: number;
  /** Dataset clock (scan times, default currentTime); default wall clock. */
  now?: () => Date;
  /** Epoch-0 scans end at or before this time; default now(). */
  startTime?: Date;
}

export interface Rapid7QuotaReport {
  limit: number;
  windowMs: number;
  requests: number;
  maxInWindow: number;
  windowsExceeded: number;
}

export interface Rapid7SimulatorHandle {
  vendor: "rapid7";
  url: string;
  groundTruth(): ServedVersion[];
  counters(): {
    quota: Rapid7QuotaReport;
    requestsByStatus: Record<string, number>;
    faultsInjected: Record<string, number>;
    epoch: number;
    findings: number;
  };
  setFaults(update: Partial<FaultSettings>): void;
  advanceEpoch(): number;
  stop(): Promise<void>;
}

export async function startRapid7Simulator(
  options: Rapid7SimulatorOptions,
): Promise<Rapid7SimulatorHandle> {
  const now = options.now ?? (() => new Date());
  const apiKey = options.apiKey ?? "demo-rapid7-key";
  const maxPageSize = options.maxPageSize ?? 500;
  const rate = options.rateLimit ?? { requests: 20, windowMs: 60_000 };
  const dataset = createRapid7Dataset({
    seed: options.seed,
    assets: options.assets,
    findingsPerAsset: options.findingsPerAsset,
    largeFindingRate: options.largeFindingRate ?? 0.002,
    startTimeMs: (options.startTime ?? now()).getTime(),
  });
  const groundTruth = createGroundTruth();
  const quota = createQuotaAuditor(rate.requests, rate.windowMs);
  const limiter = createWindowLimiter(rate.requests, rate.windowMs);
  const faultRandom = createRandom((options.seed ^ 0x5bd1e995) >>> 0);
  const requestsByStatus: Record<string, number> = {};
  const faultsInjected: Record<string, number> = {};
  let faults = mergeFaults(NO_FAULTS, options.faults ?? {});
  const writer = createFaultWriter({
    onServed: (served) => groundTruth.add(served),
  });

  const counters = () => ({
    quota: quota.report(),
    requestsByStatus: { ...requestsByStatus },
    faultsInjected: { ...faultsInjected },
    epoch: dataset.epoch,
    findings: dataset.openFindings(),
  });
  const setFaults = (update: Partial<FaultSettings>) => {
    faults = mergeFaults(faults, update);
  };
  const advanceEpoch = () => dataset.advance(now().getTime());

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", baseUrl);
    if (url.pathname.startsWith("/_sim/")) {
      const body = await readBody(req);
      send(res, handleAdmin(req.method ?? "GET", url.pathname, body));
      return;
    }

    // Counted at arrival, before the body is read.
    const arrivedMs = Date.now();
    quota.record(arrivedMs);
    const permit = limiter.record(arrivedMs);
    const body = await readBody(req);
    const reply = routeApi(req, url, body, permit.retryAfterMs);
    if (reply.served === undefined) {
      countStatus(reply.status);
      send(res, reply);
      return;
    }

    // Only a 200 asset page is eligible for an injected fault.
    const fault = drawFault(faultRandom, faults);
    for (const name of fault.names) {
      faultsInjected[name] = (faultsInjected[name] ?? 0) + 1;
    }
    countStatus(await writer.write(res, reply, fault, faults.slowMs));
  }

  function countStatus(status: number) {
    requestsByStatus[status] = (requestsByStatus[status] ?? 0) + 1;
  }

  function routeApi(
    req: IncomingMessage,
    url: URL,
    body: string,
    retryAfterMs: number | null,
  ): Reply {
    if (req.headers["x-api-key"] !== apiKey) {
      return { status: 401, body: JSON.stringify({ message: "Unauthorized" }) };
    }
    if (retryAfterMs !== null) {
      const seconds = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
      return errorReply(429, "Too many requests", { "Retry-After": seconds });
    }
    const request: ApiRequest = {
      url,
      contentType: String(req.headers["content-type"] ?? ""),
      body,
      nowMs: now().getTime(),
    };
    const path = url.pathname.replace(/\/+$/, "");
    if (path === "/validate" && req.method === "GET") {
      return { status: 200, body: JSON.stringify({ message: "Authorized" }) };
    }
    if (path !== ASSETS_PATH && path !== VULNERABILITIES_PATH) {
      return errorReply(404, "The requested resource does not exist.");
    }
    if (req.method !== "POST") {
      return errorReply(405, `Request method '${req.method}' not supported`);
    }
    return path === ASSETS_PATH
      ? handleAssetSearch(dataset, request, maxPageSize)
      : handleVulnerabilitySearch(dataset, request, maxPageSize);
  }

  function handleAdmin(method: string, path: string, body: string): Reply {
    const json = (value: unknown): Reply => ({
      status: 200,
      body: JSON.stringify(value),
    });
    if (method === "GET" && path === "/_sim/ground-truth") {
      return json({ vendor: "rapid7", served: groundTruth.list() });
    }
    if (method === "GET" && path === "/_sim/counters") return json(counters());
    if (method === "POST" && path === "/_sim/advance") {
      return json({ epoch: advanceEpoch() });
    }
    if (method === "POST" && path === "/_sim/faults") {
      try {
        setFaults(JSON.parse(body) as Partial<FaultSettings>);
        return json({ faults });
      } catch (error) {
        const body = JSON.stringify({ message: messageOf(error) });
        return { status: 400, body };
      }
    }
    return { status: 404, body: JSON.stringify({ message: "not found" }) };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The simulator has no logger; one JSON line on stderr per failure.
      process.stderr.write(
        `${JSON.stringify({
          event: "simulator.request_failed",
          vendor: "rapid7",
          url: req.url,
          err: messageOf(error),
        })}\n`,
      );
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, errorReply(500, `simulator error: ${messageOf(error)}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  const host =
    address.family === "IPv6" ? `[${address.address}]` : address.address;
  const baseUrl = `http://${host}:${address.port}`;

  return {
    vendor: "rapid7",
    url: baseUrl,
    groundTruth: () => groundTruth.list(),
    counters,
    setFaults,
    advanceEpoch,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Sliding window over every arrival; returns the wait when over budget. */
function createWindowLimiter(requests: number, windowMs: number) {
  let arrivals: number[] = [];
  let start = 0;
  return {
    record(atMs: number): { retryAfterMs: number | null } {
      arrivals.push(atMs);
      while ((arrivals[start] as number) <= atMs - windowMs) start++;
      if (start > 4096) {
        arrivals = arrivals.slice(start);
        start = 0;
      }
      if (arrivals.length - start <= requests) return { retryAfterMs: null };
      // A request is allowed again once all but requests - 1 of the
      // arrivals in the window have left it.
      const oldest = arrivals[arrivals.length - requests] as number;
      return { retryAfterMs: oldest + windowMs - atMs };
    },
  };
}

function send(res: ServerResponse, reply: Reply) {
  const body = Buffer.from(reply.body);
  res.writeHead(reply.status, {
    "Content-Type": "application/json;charset=UTF-8",
    "Content-Length": String(body.byteLength),
    ...reply.headers,
  });
  res.end(body);
}

const MAX_REQUEST_BYTES = 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_REQUEST_BYTES) throw new Error("request body over 1 MiB");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
