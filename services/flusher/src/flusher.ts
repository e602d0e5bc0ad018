import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { Server } from "@grpc/grpc-js";
import {
  createGrpcServiceDefinition,
  createHealthService,
  errorFields,
  ingestProto,
  ServingStatus,
  type Logger,
} from "@vulnsub/shared";
import {
  createBatchCommitter,
  type BatchCommitter,
} from "./batch-committer.ts";
import type { FlusherConfig } from "./config.ts";
import { createDedupIndex } from "./dedup-index.ts";
import { recoverFlusherState } from "./flusher-recovery.ts";
import {
  createFlusherMetrics,
  type FlusherMetrics,
} from "./flusher-metrics.ts";
import { createIngestService } from "./ingest-service.ts";
import { decodePageBatch } from "./page-batch-decoder.ts";
import { openJournalFile, type JournalFile } from "./journal-file.ts";
import {
  createJobStateStore,
  statePathFor,
} from "./job-state-store.ts";
import { acquireLogLock } from "./log-lock.ts";
import { createSnapshotScheduler } from "./snapshot-scheduler.ts";
import { startFlusherEndpoints } from "./flusher-endpoints.ts";

export interface FlusherOptions {
  config: FlusherConfig;
  logger: Logger;
  metrics?: FlusherMetrics;
  /** Opens the log for writing; tests inject failing file systems. */
  openFile?: (path: string) => Promise<JournalFile>;
  /** Runs after the server listens and before recovery; tests hold it. */
  beforeRecovery?: () => Promise<void>;
}

export interface Flusher {
  /** Address the gRPC server listens on, host:port with the real port. */
  readonly address: string;
  /** Address of the metrics server, or null when disabled. */
  readonly metricsAddress: string | null;
  /** Resolves when the log is recovered and the flusher is SERVING. */
  readonly ready: Promise<void>;
  readonly metrics: FlusherMetrics;
  /** Graceful stop: NOT_SERVING, flush and ack, snapshot, state, close. */
  stop(): Promise<void>;
}

const INGEST_SERVICE = ingestProto.Ingest.typeName;

/**
 * Starts the flusher: binds the gRPC server with health NOT_SERVING,
 * recovers the log, then serves. Rejects when the server cannot bind;
 * `ready` rejects when recovery fails.
 */
export async function startFlusher(options: FlusherOptions): Promise<Flusher> {
  const { config, logger } = options;
  const metrics = options.metrics ?? createFlusherMetrics();
  const logPath = config.findingsLogPath;
  await mkdir(config.dataDir, { recursive: true });
  await mkdir(dirname(logPath), { recursive: true });
  const lock = await acquireLogLock(logPath);

  const health = createHealthService({
    "": ServingStatus.NOT_SERVING,
    [INGEST_SERVICE]: ServingStatus.NOT_SERVING,
  });
  let committer: BatchCommitter | null = null;
  let stopRequested = false;
  const ingest = createIngestService({
    committer: () => committer,
    maxRecordBytes: config.maxRecordBytes,
    metrics,
    logger: logger.child({ area: "ingest" }),
  });
  const server = new Server({
    "grpc.max_receive_message_length": config.maxMessageBytes,
    "grpc.max_send_message_length": config.maxMessageBytes,
  });
  server.addService(
    createGrpcServiceDefinition(ingestProto.Ingest, {
      decode: { stream: decodePageBatch },
    }),
    ingest.implementation,
  );
  const endpoints = await startFlusherEndpoints({
    server, health, config, metrics, logger,
    journalStatus: () => committer?.writer.status ?? null,
    journalFailure: () => committer?.writer.lastFailure ?? null,
    stopping: () => stopRequested,
  }).catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });

  let snapshots: ReturnType<typeof createSnapshotScheduler> | null = null;
  const ready = (async () => {
    await options.beforeRecovery?.();
    const recovered = await recoverFlusherState(logPath, logger);
    const state = createJobStateStore(statePathFor(logPath), recovered.state);
    const file = await (options.openFile ?? openJournalFile)(logPath);
    const built = createBatchCommitter({
      file,
      path: logPath,
      offsetBytes: recovered.offsetBytes,
      batchSize: config.flushBatchSize,
      maxDelayMs: config.flushMaxDelayMs,
      committed: recovered.index,
      pending: createDedupIndex(config.flushBatchSize * 4),
      state,
      metrics,
      logger: logger.child({ area: "journal" }),
      onSynced: (offsetBytes) => {
        snapshots?.maybeWrite(offsetBytes);
        endpoints.refreshHealth();
      },
      onFailed: () => endpoints.refreshHealth(),
      commitNow: () => ingest.allStreamsWaiting(),
    });
    snapshots = createSnapshotScheduler({
      index: recovered.index,
      logPath,
      coveredOffset: recovered.fromSnapshot
        ? recovered.offsetBytes - recovered.scannedBytes
        : -1,
      intervalBytes: config.snapshotIntervalBytes,
      intervalMs: config.snapshotIntervalMs,
      logger,
      currentOffset: () => built.writer.offsetBytes,
    });
    // A rebuild or a long tail scan is not repeated at the next start.
    if (recovered.scannedBytes > 0) void snapshots.writeNow();
    await state.commit();

    metrics.dedupKeys.set(recovered.index.size);
    metrics.logBytes.set(recovered.offsetBytes);
    committer = built;
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus(INGEST_SERVICE, ServingStatus.SERVING);
    logger.info(
      { event: "flusher.serving", address: endpoints.address, path: logPath },
      "flusher is serving",
    );
  })();
  ready.catch(() => undefined);

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopRequested = true;
    stopping ??= stopFlusher();
    return stopping;
  };

  async function stopFlusher(): Promise<void> {
    const step = (event: string, message: string, fields = {}) =>
      logger.info({ event, ...fields }, message);
    step("flusher.stopping", "stopping: health NOT_SERVING, no new batches");
    health.setStatus("", ServingStatus.NOT_SERVING);
    health.setStatus(INGEST_SERVICE, ServingStatus.NOT_SERVING);
    await ready.catch(() => undefined);

    const draining = committer?.drain();
    await Promise.all([ingest.close(), draining]);
    step("flusher.streams_closed", "acked the buffered batches, closed streams");

    if (committer && committer.writer.status !== "failed") {
      await committer.drain().catch((error: unknown) =>
        logger.error({ event: "state.write_failed", ...errorFields(error) },
          "cannot write the state file at shutdown"),
      );
      step("state.written", "wrote the job state file");
      await snapshots?.writeNow();
    }
    await snapshots?.close();
    await committer?.writer.close();
    step("journal.closed", "closed the findings log");

    health.close();
    await endpoints.close(config.shutdownTimeoutMs);
    await lock.release();
    step("flusher.stopped", "flusher stopped");
  }

  return {
    address: endpoints.address,
    metricsAddress: endpoints.metricsAddress,
    ready,
    metrics,
    stop,
  };
}
