/**
 * Journal writer: appends batches of findings to the findings log with
 * group commit.
 *
 * Ack contract: an entry's promise resolves only after the write and the
 * fdatasync that cover all its bytes have returned. Acked means appended
 * and fsynced; nothing is acked on a write that failed.
 *
 * Invariants
 * - The log is JSON Lines: one finding JSON object per line, each line
 *   ending with "\n", UTF-8, only ever appended to. Lines are validated
 *   before they are queued, so an invalid line on disk can only be the
 *   trace of a write that was never fsynced.
 * - `offsetBytes` is the durable size: every byte before it was written
 *   and fsynced. Groups are written at that offset in queue order, one at
 *   a time, so the entries of all streams are committed in the order they
 *   were queued and the acks of one stream come out in order.
 * - A group is written when its entries reach `batchSize` records, when
 *   its oldest entry has waited `maxDelayMs`, when no queued entry has
 *   records (nothing to write), when `commitNow` reports no other batch
 *   worth waiting for, or at once when draining. While a group is written
 *   and fsynced the next one fills, so waiting only helps when several
 *   sources send small batches at once.
 *   A group takes whole entries; one entry larger than `batchSize` is
 *   written alone.
 * - On a write or fsync error (EIO, ENOSPC) every entry of the group and
 *   every queued entry is rejected (queued ones may count records of the
 *   failed group as duplicates), `onFailed` runs before any new entry can
 *   be queued, and the file is truncated back to `offsetBytes` and
 *   fsynced. While that runs, `append` rejects. When the truncation fails
 *   too, the writer stays failed and rejects everything until restarted.
 * - `lastFailure` holds the error of the newest failed group until a later
 *   group with records is written and fsynced; health reports it.
 * - On a disk that stays full every group fails, so journal.write_failed
 *   and journal.truncated are logged for the first failure, then at most
 *   once per 30 s with the count of failures left out.
 *
 * Crash at each step
 * - Before the write: nothing of the group is in the file or acked.
 * - During the write or before the fsync returns: part of the group may
 *   be in the file, possibly with a torn last line or zero-filled blocks.
 *   None of it was acked. At start the torn tail is cut
 *   (journal-recovery.ts) and the complete lines stay; their pollers
 *   resend the unacked batches and the dedup index drops those records.
 * - After the fsync, before the acks: the data is durable and the job
 *   cursors are older; the pollers resend and get duplicates.
 */
import {
  createRepeatLimiter,
  VulnsubError,
  type Logger,
} from "@vulnsub/shared";
import type { JournalFile } from "./journal-file.ts";

export interface JournalEntry {
  /** Lines of the entry, each ending with "\n"; empty for no records. */
  bytes: Buffer;
  /** Number of lines in `bytes`. */
  records: number;
}

export interface JournalWriterOptions<E extends JournalEntry> {
  file: JournalFile;
  path: string;
  /** Durable size of the log at start. */
  offsetBytes: number;
  batchSize: number;
  maxDelayMs: number;
  logger: Logger;
  /** Runs after a group's fsync, before its entries resolve. */
  onSynced?: (entries: readonly E[], offsetBytes: number) => void;
  /** Runs once a group failed, before anything else can be queued. */
  onFailed?: (error: VulnsubError) => void;
  /** Receives the duration of each fdatasync in seconds. */
  observeFsyncSeconds?: (seconds: number) => void;
  /** True when the queued entries need not wait for more to join. */
  commitNow?: () => boolean;
}

export type JournalStatus = "ready" | "recovering" | "failed";

/** The newest failed group commit, until a later one succeeds. */
export interface JournalFailure {
  error: VulnsubError;
  /** Date.now() when the group failed. */
  atMs: number;
}

export interface JournalWriter<E extends JournalEntry> {
  readonly offsetBytes: number;
  readonly status: JournalStatus;
  /** The newest failed group commit, cleared by the next group written. */
  readonly lastFailure: JournalFailure | null;
  /** Throws flusher_unavailable unless the writer accepts entries. */
  assertWritable(): void;
  /** Queues an entry; resolves after the fsync that covers it. */
  append(entry: E): Promise<void>;
  /** Writes everything queued now; resolves when the queue is empty. */
  drain(): Promise<void>;
  /** Drains, then closes the file. */
  close(): Promise<void>;
}

/** Minimum time between two journal.write_failed lines. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

export function createJournalWriter<E extends JournalEntry>(
  options: JournalWriterOptions<E>,
): JournalWriter<E> {
  return new GroupCommitWriter(options);
}

interface QueuedEntry<E> {
  entry: E;
  queuedAtMs: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

class GroupCommitWriter<E extends JournalEntry> implements JournalWriter<E> {
  #options: JournalWriterOptions<E>;
  #queue: QueuedEntry<E>[] = [];
  #queuedRecords = 0;
  #offsetBytes: number;
  #status: JournalStatus = "ready";
  #failure: VulnsubError | null = null;
  #lastFailure: JournalFailure | null = null;
  #repeats = createRepeatLimiter(FAILURE_LOG_INTERVAL_MS);
  #writing = false;
  #draining = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #idleWaiters: (() => void)[] = [];

  constructor(options: JournalWriterOptions<E>) {
    this.#options = options;
    this.#offsetBytes = options.offsetBytes;
  }

  get offsetBytes() {
    return this.#offsetBytes;
  }

  get status() {
    return this.#status;
  }

  get lastFailure() {
    return this.#lastFailure;
  }

  assertWritable(): void {
    if (this.#status === "ready") return;
    const path = this.#options.path;
    const detail =
      this.#status === "recovering"
        ? "is truncating a failed write"
        : `is failed (${this.#failure?.message}); restart the flusher`;
    throw new VulnsubError(
      "flusher_unavailable",
      `findings log ${path} ${detail}`,
      { cause: this.#failure, context: { path } },
    );
  }

  append(entry: E): Promise<void> {
    this.assertWritable();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ entry, queuedAtMs: performance.now(), resolve, reject });
      this.#queuedRecords += entry.records;
      this.#schedule();
    });
  }

  async drain(): Promise<void> {
    this.#draining++;
    try {
      this.#schedule();
      while (this.#queue.length > 0 || this.#writing) {
        await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      }
    } finally {
      this.#draining--;
    }
  }

  async close(): Promise<void> {
    await this.drain();
    this.#status = "failed";
    this.#failure = new VulnsubError(
      "flusher_unavailable",
      `findings log ${this.#options.path} is closed`,
    );
    await this.#options.file.close();
  }

  #schedule(): void {
    if (this.#writing || this.#status !== "ready") return;
    const oldest = this.#queue[0];
    if (!oldest) return this.#notifyIdle();

    // Entries without records (all duplicates, or a cursor alone) need no
    // write, so they do not wait for a group to fill.
    const waitedMs = performance.now() - oldest.queuedAtMs;
    const due =
      this.#draining > 0 ||
      this.#queuedRecords >= this.#options.batchSize ||
      this.#queuedRecords === 0 ||
      waitedMs >= this.#options.maxDelayMs ||
      this.#options.commitNow?.() === true;
    if (due) {
      this.#clearTimer();
      void this.#writeGroup();
      return;
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#schedule();
      }, this.#options.maxDelayMs - waitedMs);
    }
  }

  async #writeGroup(): Promise<void> {
    this.#writing = true;
    const group = this.#takeGroup();
    const entries = group.map((queued) => queued.entry);
    // A group of one entry (a full batch) is written without a copy.
    const bytes =
      entries.length === 1
        ? (entries[0] as E).bytes
        : Buffer.concat(entries.map((entry) => entry.bytes));

    try {
      if (bytes.length > 0) await this.#writeAndSync(bytes);
    } catch (error) {
      await this.#fail(group, bytes.length, error);
      return;
    }

    this.#offsetBytes += bytes.length;
    if (bytes.length > 0) this.#lastFailure = null;
    this.#options.onSynced?.(entries, this.#offsetBytes);
    for (const queued of group) queued.resolve();
    this.#writing = false;
    this.#schedule();
  }

  #takeGroup(): QueuedEntry<E>[] {
    const group: QueuedEntry<E>[] = [];
    let records = 0;
    while (this.#queue.length > 0 && records < this.#options.batchSize) {
      const queued = this.#queue.shift() as QueuedEntry<E>;
      group.push(queued);
      records += queued.entry.records;
    }
    this.#queuedRecords -= records;
    return group;
  }

  async #writeAndSync(bytes: Buffer): Promise<void> {
    const file = this.#options.file;
    let written = 0;
    while (written < bytes.length) {
      const count = await file.write(
        bytes.subarray(written),
        this.#offsetBytes + written,
      ).catch((error: unknown) => {
        throw this.#error("journal_write_failed", "write", bytes.length, error);
      });
      if (count <= 0) {
        const error = new Error(`wrote ${count} bytes`);
        throw this.#error("journal_write_failed", "write", bytes.length, error);
      }
      written += count;
    }

    const startedMs = performance.now();
    await file.datasync().catch((error: unknown) => {
      throw this.#error("journal_fsync_failed", "fsync", bytes.length, error);
    });
    this.#options.observeFsyncSeconds?.((performance.now() - startedMs) / 1000);
  }

  async #fail(group: QueuedEntry<E>[], bytes: number, cause: unknown) {
    const { logger, path, file } = this.#options;
    const error =
      cause instanceof VulnsubError
        ? cause
        : this.#error("journal_write_failed", "write", bytes, cause);
    this.#status = "recovering";
    this.#failure = error;
    this.#lastFailure = { error, atMs: Date.now() };

    const rejected = [...group, ...this.#queue];
    this.#queue = [];
    this.#queuedRecords = 0;
    this.#options.onFailed?.(error);
    for (const queued of rejected) queued.reject(error);
    const logged = this.#repeats.allow("write_failed");
    if (logged) {
      logger.error(
        {
          event: "journal.write_failed",
          path,
          code: error.code,
          err: error,
          offsetBytes: this.#offsetBytes,
          groupBytes: bytes,
          entriesRejected: rejected.length,
          suppressed: this.#repeats.takeSuppressed("write_failed"),
        },
        "findings log write failed; rejected the batches it covered",
      );
    }

    try {
      await file.truncate(this.#offsetBytes);
      await file.datasync();
      this.#status = "ready";
      if (logged) {
        logger.warn(
          { event: "journal.truncated", path, offsetBytes: this.#offsetBytes },
          "truncated the findings log back to its last fsynced size",
        );
      }
    } catch (truncateError) {
      this.#status = "failed";
      logger.error(
        {
          event: "journal.failed",
          path,
          code: "journal_write_failed",
          err: truncateError,
          offsetBytes: this.#offsetBytes,
        },
        "cannot truncate the findings log after a failed write; " +
          "rejecting all batches until the flusher is restarted",
      );
    }
    this.#writing = false;
    this.#notifyIdle();
  }

  #notifyIdle(): void {
    if (this.#queue.length > 0 || this.#writing) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #error(
    code: "journal_write_failed" | "journal_fsync_failed",
    step: string,
    byteCount: number,
    cause: unknown,
  ): VulnsubError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const path = this.#options.path;
    return new VulnsubError(
      code,
      `findings log ${path}: ${step} failed at offset ${this.#offsetBytes} ` +
        `(${byteCount} bytes): ${reason}`,
      { cause, context: { path, offsetBytes: this.#offsetBytes } },
    );
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
