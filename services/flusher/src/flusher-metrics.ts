import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
} from "prom-client";

/** Prometheus metrics of the flusher, registered on their own registry. */
export interface FlusherMetrics {
  registry: Registry;
  findingsWritten: Counter<"vendor" | "source">;
  findingsDuplicate: Counter<"vendor" | "source">;
  batchesInFlight: Gauge;
  ackLatencySeconds: Histogram;
  fsyncDurationSeconds: Histogram;
  dedupKeys: Gauge;
  logBytes: Gauge;
  batchesRejected: Counter<"code">;
  /** 1 while /healthz is healthy (SERVING, log writable), else 0. */
  serving: Gauge;
}

// From 0.1 ms to about 3 s; fsyncs and acks on local disks sit at the low
// end, a stalled disk at the high end.
const LATENCY_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5,
];

export function createFlusherMetrics(
  registry = new Registry(),
): FlusherMetrics {
  const registers = [registry];
  // Process CPU, memory, open files and event loop lag, as process_* and
  // nodejs_* series.
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    findingsWritten: new Counter({
      name: "vulnsub_flusher_findings_written_total",
      help: "Findings appended to the log and fsynced",
      labelNames: ["vendor", "source"],
      registers,
    }),
    findingsDuplicate: new Counter({
      name: "vulnsub_flusher_findings_duplicate_total",
      help: "Findings dropped because the same version was already logged",
      labelNames: ["vendor", "source"],
      registers,
    }),
    batchesInFlight: new Gauge({
      name: "vulnsub_flusher_batches_in_flight",
      help: "Batches accepted and not yet acked",
      registers,
    }),
    ackLatencySeconds: new Histogram({
      name: "vulnsub_flusher_ack_latency_seconds",
      help: "Time from receiving a batch to sending its ack",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    fsyncDurationSeconds: new Histogram({
      name: "vulnsub_flusher_fsync_duration_seconds",
      help: "Duration of each fdatasync of the findings log",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    dedupKeys: new Gauge({
      name: "vulnsub_flusher_dedup_keys",
      help: "Finding versions in the dedup index",
      registers,
    }),
    logBytes: new Gauge({
      name: "vulnsub_flusher_log_bytes",
      help: "Durable size of the findings log",
      registers,
    }),
    batchesRejected: new Counter({
      name: "vulnsub_flusher_batches_rejected_total",
      help: "Batches and calls rejected, by gRPC status code name",
      labelNames: ["code"],
      registers,
    }),
    serving: new Gauge({
      name: "vulnsub_flusher_serving",
      help: "1 while the flusher is SERVING with a writable log, else 0",
      registers,
    }),
  };
}
