import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { jobId, parseHostPort, type JobRef } from "@vulnsub/shared";
import type { ThrottleSignal } from "./adapter.ts";
import type { CycleResult } from "./cycle-runner.ts";
import type { PollLoopObserver, PollLoopStatus } from "./poll-loop.ts";
import type { VendorAttemptResult } from "./vendor-http.ts";

/**
 * Prometheus metrics of one poller process. Counters carry the job as
 * {vendor, source}; the lock and cycle gauges carry it as {job}.
 */
export function createPollerMetrics(job: JobRef) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labels = { vendor: job.vendor, source: job.source };
  const jobLabel = { job: jobId(job) };
  const counter = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const jobLabels = ["vendor", "source"];

  const requests = counter(
    "vulnsub_poller_vendor_requests_total",
    "Vendor HTTP attempts by operation and status (HTTP code, error, timeout).",
    [...jobLabels, "operation", "status"],
  );
  const pages = counter(
    "vulnsub_poller_pages_fetched_total",
    "Vendor pages (or Tenable chunks) fully fetched.",
    jobLabels,
  );
  const findings = counter(
    "vulnsub_poller_findings_fetched_total",
    "Findings the adapter yielded, duplicates included.",
    jobLabels,
  );
  const inFlight = gauge(
    "vulnsub_poller_batches_in_flight",
    "Batches sent to the flusher and not yet acked.",
    jobLabels,
  );
  const waitSeconds = counter(
    "vulnsub_poller_ratelimit_wait_seconds_total",
    "Time spent waiting for permits, vendor pauses and slots, in seconds.",
    jobLabels,
  );
  const pauses = counter(
    "vulnsub_poller_vendor_pauses_total",
    "Throttle answers (HTTP 429, Qualys 409) that made the poller wait.",
    [...jobLabels, "kind"],
  );
  const lockHeld = gauge(
    "vulnsub_poller_lock_held",
    "1 while this process holds the job lock, else 0.",
    ["job"],
  );
  const takeovers = counter(
    "vulnsub_poller_takeovers_total",
    "Lock acquisitions that found the lock held or left stale by another.",
    ["job"],
  );
  const lastSync = gauge(
    "vulnsub_poller_last_successful_sync_timestamp_seconds",
    "Unix time of the last completed cycle, in seconds.",
    ["job"],
  );
  const cycleFindings = gauge(
    "vulnsub_poller_cycle_findings",
    "Findings of the last completed cycle.",
    ["job"],
  );
  const redisUp = gauge(
    "vulnsub_poller_redis_up",
    "1 while the Redis connection is ready, else 0.",
    [],
  );
  lockHeld.set(jobLabel, 0);

  const observer: PollLoopObserver = {
    lockChanged: (held) => lockHeld.set(jobLabel, held ? 1 : 0),
    pageFetched: (records) => {
      pages.inc(labels);
      findings.inc(labels, records);
    },
    unackedChanged: (unacked) => inFlight.set(labels, unacked),
    cycleCompleted: (result: CycleResult, at: Date) => {
      lastSync.set(jobLabel, at.getTime() / 1000);
      cycleFindings.set(jobLabel, result.records);
    },
  };

  return {
    registry,
    observer,
    vendorAttempt: (result: VendorAttemptResult) =>
      requests.inc({
        ...labels,
        operation: result.operation,
        status: result.status,
      }),
    rateLimitWaited: (waitedMs: number) =>
      waitSeconds.inc(labels, waitedMs / 1000),
    throttled: (signal: ThrottleSignal) => {
      pauses.inc({ ...labels, kind: signal.kind });
      waitSeconds.inc(labels, signal.waitMs / 1000);
    },
    takeover: () => takeovers.inc(jobLabel),
    setRedisUp: (up: boolean) => redisUp.set(up ? 1 : 0),
  };
}

export type PollerMetrics = ReturnType<typeof createPollerMetrics>;

export interface HealthReport {
  healthy: boolean;
  reason: string;
}

/**
 * Judges health from the loop status: unhealthy when the job has held the
 * lock for longer than staleFactor x pollIntervalMs without completing a
 * cycle, or when no cycle has completed yet and the last one failed. A
 * standby is healthy, and so is a cycle that found 0 findings.
 */
export function assessHealth(
  status: PollLoopStatus,
  options: { pollIntervalMs: number; staleFactor: number; now: Date },
): HealthReport {
  if (status.phase === "standby") {
    return {
      healthy: true,
      reason: "standby: another poller holds the job lock",
    };
  }
  if (status.lastCompletedAt === null && status.lastError) {
    return {
      healthy: false,
      reason:
        `first cycle failing (${status.consecutiveFailures} attempts): ` +
        `${status.lastError.code}: ${status.lastError.message}`,
    };
  }

  const since = latest(status.lastCompletedAt, status.activeSince);
  const limitMs = options.staleFactor * options.pollIntervalMs;
  const ageMs = since ? options.now.getTime() - since.getTime() : 0;
  if (ageMs > limitMs) {
    const last = status.lastError
      ? `; last error ${status.lastError.code}`
      : "";
    return {
      healthy: false,
      reason:
        `no cycle completed for ${Math.round(ageMs / 1000)} s ` +
        `(limit ${Math.round(limitMs / 1000)} s)${last}`,
    };
  }
  const at = status.lastCompletedAt?.toISOString() ?? "none yet";
  return {
    healthy: true,
    reason: `${status.phase}; last cycle completed ${at}`,
  };
}

/**
 * Serves GET /metrics (Prometheus text) and GET /healthz (200 or 503 with
 * a JSON body {healthy, reason}) on a loopback address.
 */
export function startPollerMetricsServer(options: {
  listen: string;
  registry: Registry;
  health: () => HealthReport;
}) {
  const { host, port } = parseHostPort(options.listen);
  const server = Bun.serve({
    hostname: host,
    port,
    fetch: async (request) => {
      const { pathname } = new URL(request.url);
      if (request.method !== "GET") {
        return new Response("method not allowed\n", { status: 405 });
      }
      if (pathname === "/metrics") {
        return new Response(await options.registry.metrics(), {
          headers: { "content-type": options.registry.contentType },
        });
      }
      if (pathname === "/healthz") {
        const report = options.health();
        return Response.json(report, { status: report.healthy ? 200 : 503 });
      }
      return new Response("not found: try /metrics or /healthz\n", {
        status: 404,
      });
    },
  });
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    address: `${shownHost}:${server.port}`,
    close: () => server.stop(true),
  };
}

function latest(a: Date | null, b: Date | null): Date | null {
  if (!a) return b;
  if (!b) return a;
  return a > b ? a : b;
}
