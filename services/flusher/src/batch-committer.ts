import { VulnsubError, type Logger } from "@vulnsub/shared";
import type { PreparedBatch } from "./batch-validator.ts";
import type { DedupIndex } from "./dedup-index.ts";
import type { Fingerprint } from "./finding-identity.ts";
import type { FlusherMetrics } from "./flusher-metrics.ts";
import type { JobStateStore } from "./job-state-store.ts";
import {
  createJournalWriter,
  type JournalEntry,
  type JournalWriter,
} from "./journal-writer.ts";
import type { JournalFile } from "./journal-file.ts";

/** Ack fields of one committed batch. */
export interface BatchResult {
  seq: bigint;
  written: number;
  duplicates: number;
  /** Durable cursor of the job once the batch was committed. */
  cursor: string;
}

export interface JobStateView {
  cursor: string;
  fencingToken: bigint;
  writtenTotal: bigint;
}

/**
 * Runs the commit path of validated batches: fencing check, dedup against
 * the committed and pending indexes, group commit through the journal
 * writer, then the job state write. `submit` resolves only once the
 * batch's records and its cursor are durable.
 */
export interface BatchCommitter {
  readonly writer: JournalWriter<CommitEntry>;
  submit(batch: PreparedBatch): Promise<BatchResult>;
  /** Reads a job's state; a newer token is registered durably first. */
  getJobState(jobId: string, fencingToken: bigint): Promise<JobStateView>;
  /** Writes everything queued and the state file. */
  drain(): Promise<void>;
}

export interface CommitEntry extends JournalEntry {
  batch: PreparedBatch;
  fingerprints: Fingerprint[];
  /** Set after the fsync: the job's durable cursor including this batch. */
  cursorAfter: string;
}

export interface BatchCommitterOptions {
  file: JournalFile;
  path: string;
  offsetBytes: number;
  batchSize: number;
  maxDelayMs: number;
  /** Fingerprints of every line in the log up to offsetBytes. */
  committed: DedupIndex;
  /** Fingerprints of queued batches; must be empty at start. */
  pending: DedupIndex;
  state: JobStateStore;
  metrics: FlusherMetrics;
  logger: Logger;
  /** Runs after each group's fsync, with the durable log size. */
  onSynced?: (offsetBytes: number) => void;
  /** Runs once a group failed, before its batches are rejected. */
  onFailed?: () => void;
  /** True when a group need not wait for other streams' batches. */
  commitNow?: () => boolean;
}

export function createBatchCommitter(
  options: BatchCommitterOptions,
): BatchCommitter {
  const { committed, pending, state, metrics } = options;

  const writer = createJournalWriter<CommitEntry>({
    file: options.file,
    path: options.path,
    offsetBytes: options.offsetBytes,
    batchSize: options.batchSize,
    maxDelayMs: options.maxDelayMs,
    logger: options.logger,
    ...(options.commitNow ? { commitNow: options.commitNow } : {}),
    observeFsyncSeconds: (seconds) =>
      metrics.fsyncDurationSeconds.observe(seconds),
    onSynced(entries, offsetBytes) {
      for (const entry of entries) applySynced(entry);
      state.setLogBytes(offsetBytes);
      metrics.dedupKeys.set(committed.size);
      metrics.logBytes.set(offsetBytes);
      options.onSynced?.(offsetBytes);
    },
    // Every queued entry was rejected with the group, so no pending key
    // belongs to a batch that can still be written.
    onFailed: () => {
      pending.clear();
      options.onFailed?.();
    },
  });

  const applySynced = (entry: CommitEntry) => {
    for (const fingerprint of entry.fingerprints) {
      pending.delete(fingerprint);
      committed.add(fingerprint);
    }
    const { batch } = entry;
    state.applyCommitted(batch.jobId, entry.records, batch.cursor);
    entry.cursorAfter = state.get(batch.jobId).cursor;
    if (entry.records > 0) {
      metrics.findingsWritten.inc(
        { vendor: batch.job.vendor, source: batch.job.source },
        entry.records,
      );
    }
  };

  return {
    writer,
    submit(batch) {
      try {
        writer.assertWritable();
        checkFencing(state, batch.jobId, batch.fencingToken);
      } catch (error) {
        return Promise.reject(error);
      }
      const entry = dedupBatch(batch, committed, pending);
      const duplicates = batch.records.length - entry.records;
      if (duplicates > 0) {
        metrics.findingsDuplicate.inc(
          { vendor: batch.job.vendor, source: batch.job.source },
          duplicates,
        );
      }
      return commitEntry(entry, duplicates);
    },
    async getJobState(jobId, fencingToken) {
      if (fencingToken > 0n) {
        checkFencing(state, jobId, fencingToken);
        await state.commit();
      }
      const record = state.get(jobId);
      return { ...record };
    },
    async drain() {
      await writer.drain();
      await state.commit();
    },
  };

  async function commitEntry(
    entry: CommitEntry,
    duplicates: number,
  ): Promise<BatchResult> {
    metrics.batchesInFlight.inc();
    try {
      await writer.append(entry);
      await state.commit();
    } finally {
      metrics.batchesInFlight.dec();
    }
    return {
      seq: entry.batch.seq,
      written: entry.records,
      duplicates,
      cursor: entry.cursorAfter,
    };
  }
}

/** Throws fencing_token_stale when `token` is older than the newest. */
function checkFencing(state: JobStateStore, jobId: string, token: bigint) {
  const newest = state.registerToken(jobId, token);
  if (newest === null) return;
  throw new VulnsubError(
    "fencing_token_stale",
    `job ${jobId}: fencing token ${token} is older than the newest token ` +
      `${newest}; another poller holds the job lock`,
    { context: { job: jobId, fencingToken: token.toString() } },
  );
}

/**
 * Builds the journal entry of a batch's new records. A record is a
 * duplicate when its fingerprint is committed, queued in another batch or
 * earlier in this one. New fingerprints go to the pending index at once.
 */
function dedupBatch(
  batch: PreparedBatch,
  committed: DedupIndex,
  pending: DedupIndex,
): CommitEntry {
  const lines: Buffer[] = [];
  const fingerprints: Fingerprint[] = [];
  for (const record of batch.records) {
    if (committed.has(record.fingerprint)) continue;
    if (!pending.add(record.fingerprint)) continue;
    lines.push(batch.lines.subarray(record.startByte, record.endByte));
    fingerprints.push(record.fingerprint);
  }
  // Without duplicates the batch's buffer is the entry as it is.
  const whole = lines.length === batch.records.length;
  return {
    bytes: whole ? batch.lines : Buffer.concat(lines),
    records: lines.length,
    batch,
    fingerprints,
    cursorAfter: "",
  };
}
