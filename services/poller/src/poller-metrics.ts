import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
} from "prom-client";
import { jobId, type JobRef } from "@vulnsub/shared";
import type { ThrottleSignal } from "./adapter.ts";
import type { CycleResult } from "./cycle-runner.ts";
import type { IncomingAck } from "./flusher-connection.ts";
import type { PollLoopObserver } from "./poll-loop.ts";
import type { VendorAttemptResult } from "./vendor-http.ts";

// From 1 ms to 60 s: a loopback flusher acks within milliseconds, a busy
// disk or a restarting flusher within seconds.
const ACK_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  30, 60,
];

// From 50 ms, below which a permit wait is only Redis round trips, to the
// length of a vendor's quota window and beyond.
const PERMIT_WAIT_BUCKETS_SECONDS = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900,
];

/**
 * Prometheus metrics of one poller process. Counters and histograms carry
 * the job as {vendor, source}; the per-job gauges carry it as {job}.
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
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({
      name,
      help,
      buckets,
      labelNames: ["vendor", "source"],
      registers: [registry],
    });
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
  const written = counter(
    "vulnsub_poller_findings_written_total",
    "Findings the flusher acked as appended to the log.",
    jobLabels,
  );
  const duplicates = counter(
    "vulnsub_poller_findings_duplicate_total",
    "Findings the flusher acked as already in the log, so dropped.",
    jobLabels,
  );
  const inFlight = gauge(
    "vulnsub_poller_batches_in_flight",
    "Batches sent to the flusher and not yet acked.",
    jobLabels,
  );
  const ackLatency = histogram(
    "vulnsub_poller_ack_latency_seconds",
    "Time from writing a batch to the stream to its ack (append + fsync).",
    ACK_BUCKETS_SECONDS,
  );
  const waitSeconds = counter(
    "vulnsub_poller_ratelimit_wait_seconds_total",
    "Time spent waiting for permits, vendor pauses and slots, in seconds.",
    jobLabels,
  );
  const permitWaits = histogram(
    "vulnsub_poller_permit_wait_seconds",
    "Wait of each vendor request for its rate limit permit, pause and slot.",
    PERMIT_WAIT_BUCKETS_SECONDS,
  );
  const pauses = counter(
    "vulnsub_poller_vendor_pauses_total",
    "Throttle answers (HTTP 429, Qualys 409) that made the poller wait.",
    [...jobLabels, "kind"],
  );
  const cyclesCompleted = counter(
    "vulnsub_poller_cycles_completed_total",
    "Cycles that completed, including those that found 0 findings.",
    jobLabels,
  );
  const cycleFailures = counter(
    "vulnsub_poller_cycle_failures_total",
    "Cycles that failed and will be retried, by error code.",
    [...jobLabels, "code"],
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
  const lastFailure = gauge(
    "vulnsub_poller_last_cycle_failure_timestamp_seconds",
    "Unix time of the last failed cycle, in seconds.",
    ["job"],
  );
  const cycleFindings = gauge(
    "vulnsub_poller_cycle_findings",
    "Findings of the last completed cycle (0 is a valid outcome).",
    ["job"],
  );
  const healthy = gauge(
    "vulnsub_poller_healthy",
    "1 while the health check passes (same as /healthz), else 0.",
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
    batchAcked: (ack: IncomingAck, latencyMs: number) => {
      written.inc(labels, ack.written);
      duplicates.inc(labels, ack.duplicates);
      ackLatency.observe(labels, latencyMs / 1000);
    },
    cycleCompleted: (result: CycleResult, at: Date) => {
      cyclesCompleted.inc(labels);
      lastSync.set(jobLabel, at.getTime() / 1000);
      cycleFindings.set(jobLabel, result.records);
    },
    cycleFailed: (code: string) => {
      cycleFailures.inc({ ...labels, code });
      lastFailure.set(jobLabel, Date.now() / 1000);
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
    rateLimitWaited: (waitedMs: number) => {
      waitSeconds.inc(labels, waitedMs / 1000);
      permitWaits.observe(labels, waitedMs / 1000);
    },
    throttled: (signal: ThrottleSignal) => {
      pauses.inc({ ...labels, kind: signal.kind });
      waitSeconds.inc(labels, signal.waitMs / 1000);
    },
    takeover: () => takeovers.inc(jobLabel),
    setRedisUp: (up: boolean) => redisUp.set(up ? 1 : 0),
    setHealthy: (up: boolean) => healthy.set(jobLabel, up ? 1 : 0),
  };
}

export type PollerMetrics = ReturnType<typeof createPollerMetrics>;
