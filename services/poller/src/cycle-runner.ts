import { AbortedError, type Logger } from "@vulnsub/shared";
import type {
  AdapterBatch,
  SyncContext,
  VendorAdapter,
  VendorHttp,
} from "./adapter.ts";
import type { AckTally, BatchSender } from "./batch-sender.ts";

/** Totals of one completed cycle. */
export interface CycleResult {
  /** Records the adapter yielded. */
  records: number;
  /** Records the flusher appended. */
  written: number;
  /** Records the flusher already had. */
  duplicates: number;
  /** Vendor pages (or Tenable chunks) completed. */
  pages: number;
  /** Durable cursor after the cycle's last ack. */
  cursor: string | null;
}

/** Handle the poll loop uses to stop a running cycle gracefully. */
export interface CycleControl {
  /**
   * Stops fetching: at a page boundary the adapter is aborted at once,
   * otherwise the rest of the page in flight is fetched first.
   */
  requestStop(): void;
}

export interface RunCycleOptions {
  adapter: VendorAdapter;
  sender: BatchSender;
  cursor: string | null;
  /** Fires on lock loss or forced stop: everything stops at once. */
  tenure: AbortSignal;
  createHttp(signal: AbortSignal): VendorHttp;
  logger: Logger;
  now: () => Date;
  maxBatchRecords: number;
  backfillStart: Date;
  lookbackMs: number;
  source: string;
  onStart(control: CycleControl): void;
  onPageFetched?(records: number): void;
}

/**
 * Runs one sync cycle: pulls batches from the adapter and queues each on
 * the sender, whose bounded window back-pressures the adapter, so the next
 * page is fetched while earlier batches wait for their acks. Returns the
 * totals once the iterator has returned and every batch is acked, or
 * "stopped" after a graceful stop (the batches sent are acked first).
 * Adapter and sender errors propagate.
 */
export async function runCycle(
  options: RunCycleOptions,
): Promise<CycleResult | "stopped"> {
  const controller = new AbortController();
  const signal = AbortSignal.any([controller.signal, options.tenure]);
  const page = { atBoundary: true, records: 0 };
  let stopRequested = false;
  options.onStart({
    requestStop() {
      stopRequested = true;
      if (page.atBoundary) controller.abort(new AbortedError("cycle stopped"));
    },
  });

  const context: SyncContext = {
    http: options.createHttp(signal),
    signal,
    // Adapter lines carry area "adapter", so they differ from the loop's
    // own events and LOG_DEBUG=adapter turns on their debug lines.
    logger: options.logger.child({ area: "adapter" }),
    now: options.now,
    maxBatchRecords: options.maxBatchRecords,
    source: options.source,
    backfillStart: options.backfillStart,
    lookbackMs: options.lookbackMs,
  };
  const tally: AckTally = { written: 0, duplicates: 0 };
  const totals = { records: 0, pages: 0 };
  const iterator = options.adapter
    .sync(options.cursor, context)
    [Symbol.asyncIterator]();
  let finished = false;

  try {
    for (;;) {
      if (stopRequested && page.atBoundary) break;
      const next = await nextBatch(
        iterator,
        () =>
          stopRequested && controller.signal.aborted && !options.tenure.aborted,
      );
      if (next === "stopped") break;
      if (next.done) {
        finished = true;
        break;
      }

      countBatch(next.value, page, totals, options);
      await options.sender.send(next.value, tally);
    }
  } catch (error) {
    // Acks of the batches already sent move the durable cursor past every
    // page they completed, so the retry does not fetch those pages again.
    // A sender failure (lock lost) raised by drain() takes precedence.
    if (!options.tenure.aborted) await options.sender.drain();
    throw error;
  } finally {
    controller.abort(new AbortedError("cycle ended"));
    if (!finished) iterator.return?.().catch(() => undefined);
  }

  await options.sender.drain();
  if (!finished) return "stopped";
  return {
    records: totals.records,
    written: tally.written,
    duplicates: tally.duplicates,
    pages: totals.pages,
    cursor: options.sender.durableCursor,
  };
}

// An adapter aborted by a graceful stop rejects with whatever its HTTP
// call threw; that rejection means "stopped", not a failed cycle.
async function nextBatch(
  iterator: AsyncIterator<AdapterBatch>,
  isStopping: () => boolean,
): Promise<IteratorResult<AdapterBatch> | "stopped"> {
  try {
    return await iterator.next();
  } catch (error) {
    if (isStopping()) return "stopped";
    throw error;
  }
}

function countBatch(
  batch: AdapterBatch,
  page: { atBoundary: boolean; records: number },
  totals: { records: number; pages: number },
  options: RunCycleOptions,
) {
  totals.records += batch.records.length;
  page.records += batch.records.length;
  page.atBoundary = batch.endOfPage;
  if (!batch.endOfPage) return;

  totals.pages++;
  options.logger.info(
    { event: "page.fetched", page: batch.page, records: page.records },
    `page ${batch.page} fetched: ${page.records} records`,
  );
  options.onPageFetched?.(page.records);
  page.records = 0;
}
