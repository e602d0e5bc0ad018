import { VulnsubError, type Logger } from "@vulnsub/shared";
import { createDedupIndex, type DedupIndex } from "./dedup-index.ts";
import { loadDedupSnapshot, snapshotPathFor } from "./dedup-snapshot.ts";
import { fingerprintOf } from "./finding-identity.ts";
import { repairJournalTail, scanJournal } from "./journal-recovery.ts";
import {
  loadJobState,
  statePathFor,
  type JobStateContent,
} from "./job-state-store.ts";

/** Everything the flusher needs to resume writing the log. */
export interface RecoveredState {
  /** Durable log size: every byte before it is a complete line. */
  offsetBytes: number;
  /** Fingerprints of every line before offsetBytes. */
  index: DedupIndex;
  /** Job state with writtenTotal counted up to offsetBytes. */
  state: JobStateContent;
  /** True when the index came from a snapshot that the log matched. */
  fromSnapshot: boolean;
  /** Log bytes read past the snapshot (or from 0 on a rebuild). */
  scannedBytes: number;
}

// Average line size assumed to size the index before a rebuild, so a
// large log does not double the table many times.
const ESTIMATED_LINE_BYTES = 2048;

/**
 * Recovers the flusher's state from the files next to the log. It reads
 * the state file, cuts a torn tail off the log, and loads the dedup
 * snapshot when it matches the log (or rebuilds from the whole log). Then
 * it scans the log past the snapshot and past the state file's count.
 */
export async function recoverFlusherState(
  logPath: string,
  logger: Logger,
): Promise<RecoveredState> {
  const startedMs = performance.now();
  const state = await loadJobState(statePathFor(logPath));
  const repair = await repairJournalTail(logPath, state.logBytes, logger);
  const sizeBytes = repair.sizeBytes;
  if (sizeBytes < state.logBytes) {
    throw new VulnsubError(
      "journal_corrupt",
      `findings log ${logPath} is ${sizeBytes} bytes but the state file ` +
        `records ${state.logBytes} fsynced bytes: acked findings are missing; ` +
        "restore the log from a backup",
      { context: { path: logPath, sizeBytes, durableBytes: state.logBytes } },
    );
  }

  const loaded = await loadDedupSnapshot(
    snapshotPathFor(logPath),
    logPath,
    sizeBytes,
  );
  if (!loaded.ok && loaded.reason !== "no snapshot file") {
    logger.warn(
      { event: "snapshot.rejected", path: snapshotPathFor(logPath), reason: loaded.reason },
      "dedup snapshot does not match the log; rebuilding from the whole log",
    );
  }
  const index = loaded.ok
    ? loaded.snapshot.index
    : createDedupIndex(Math.ceil(sizeBytes / ESTIMATED_LINE_BYTES));
  const snapshotOffset = loaded.ok ? loaded.snapshot.logOffset : 0;

  const countFrom = state.logBytes;
  const scanFrom = Math.min(snapshotOffset, countFrom);
  await scanJournal(logPath, scanFrom, sizeBytes, (identity, offset) => {
    if (offset >= snapshotOffset) index.add(fingerprintOf(identity));
    if (offset >= countFrom) {
      countLine(state, `${identity.vendor}:${identity.source}`);
    }
  });
  state.logBytes = sizeBytes;

  const recovered: RecoveredState = {
    offsetBytes: sizeBytes,
    index,
    state,
    fromSnapshot: loaded.ok,
    scannedBytes: sizeBytes - scanFrom,
  };
  logger.info(
    {
      event: "journal.recovered",
      path: logPath,
      sizeBytes,
      cutBytes: repair.cutBytes,
      dedupKeys: index.size,
      fromSnapshot: recovered.fromSnapshot,
      scannedBytes: recovered.scannedBytes,
      durationMs: Math.round(performance.now() - startedMs),
    },
    "recovered the findings log",
  );
  return recovered;
}

function countLine(state: JobStateContent, jobId: string): void {
  const entry = state.jobs.get(jobId);
  if (entry) {
    entry.writtenTotal++;
    return;
  }
  state.jobs.set(jobId, { cursor: "", fencingToken: 0n, writtenTotal: 1n });
}
