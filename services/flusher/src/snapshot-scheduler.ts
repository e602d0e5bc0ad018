import { errorFields, type Logger } from "@vulnsub/shared";
import type { DedupIndex } from "./dedup-index.ts";
import {
  encodeDedupSnapshot,
  snapshotPathFor,
  writeDedupSnapshot,
} from "./dedup-snapshot.ts";

/**
 * Decides when to rewrite the dedup snapshot: after the log grew by
 * `intervalBytes`, after `intervalMs` when it grew at all, and on demand
 * at shutdown. One snapshot is written at a time.
 *
 * The table is copied synchronously, so callers pass the durable log
 * offset at a moment when the committed index contains exactly the lines
 * before it. That is any time outside the journal writer's onSynced hook.
 */
export interface SnapshotScheduler {
  /** Starts a snapshot when one is due. */
  maybeWrite(offsetBytes: number): void;
  /** Writes a snapshot of the current offset unless one covers it. */
  writeNow(): Promise<void>;
  /** Stops the timer; waits for a running snapshot. */
  close(): Promise<void>;
}

export interface SnapshotSchedulerOptions {
  index: DedupIndex;
  logPath: string;
  /** Log offset the snapshot on disk covers (-1 when none matches). */
  coveredOffset: number;
  intervalBytes: number;
  intervalMs: number;
  logger: Logger;
  /** Durable log offset, read by the timer. */
  currentOffset: () => number;
}

export function createSnapshotScheduler(
  options: SnapshotSchedulerOptions,
): SnapshotScheduler {
  const { index, logPath, logger } = options;
  const path = snapshotPathFor(logPath);
  let coveredOffset = options.coveredOffset;
  let coveredAtMs = performance.now();
  let running: Promise<void> | null = null;

  const write = (offsetBytes: number): Promise<void> => {
    const startedMs = performance.now();
    // encodeDedupSnapshot copies the table before its first await.
    const encoded = encodeDedupSnapshot(index, logPath, offsetBytes);
    const keys = index.size;
    running = encoded
      .then((bytes) => writeDedupSnapshot(path, bytes).then(() => bytes.length))
      .then((sizeBytes) => {
        coveredOffset = offsetBytes;
        coveredAtMs = performance.now();
        logger.info(
          {
            event: "snapshot.written",
            path,
            logOffset: offsetBytes,
            dedupKeys: keys,
            sizeBytes,
            durationMs: Math.round(performance.now() - startedMs),
          },
          "wrote the dedup snapshot",
        );
      })
      .catch((error: unknown) => {
        // The previous snapshot stays valid, or a restart rebuilds from the
        // log: nothing is lost, so this is a warning.
        logger.warn(
          { event: "snapshot.write_failed", path, ...errorFields(error) },
          "cannot write the dedup snapshot",
        );
      })
      .finally(() => {
        running = null;
      });
    return running;
  };

  const maybeWrite = (offsetBytes: number) => {
    if (running || offsetBytes === coveredOffset) return;
    const grownBytes = offsetBytes - Math.max(coveredOffset, 0);
    const elapsedMs = performance.now() - coveredAtMs;
    if (grownBytes >= options.intervalBytes || elapsedMs >= options.intervalMs) {
      void write(offsetBytes);
    }
  };

  const timer = setInterval(
    () => maybeWrite(options.currentOffset()),
    Math.min(options.intervalMs, 60_000),
  );
  timer.unref();

  return {
    maybeWrite,
    async writeNow() {
      while (running) await running;
      // Read after the wait: the index may have grown in the meantime.
      const offsetBytes = options.currentOffset();
      if (offsetBytes !== coveredOffset) await write(offsetBytes);
    },
    async close() {
      clearInterval(timer);
      while (running) await running;
    },
  };
}
