import {
  errorCodeOf,
  errorFields,
  jobId,
  type JobRef,
  type Logger,
} from "@vulnsub/shared";
import type { VendorAdapter, VendorHttp } from "./adapter.ts";
import {
  createBatchSender,
  type BatchSender,
  type BatchSenderOptions,
} from "./batch-sender.ts";
import {
  runCycle,
  type CycleControl,
  type CycleResult,
} from "./cycle-runner.ts";
import type {
  FlusherClient,
  IncomingAck,
} from "./flusher-connection.ts";
import {
  createCycleReporter,
  createPollStatus,
  type PollLoopStatus,
} from "./poll-status.ts";

export type { PollLoopStatus, PollPhase } from "./poll-status.ts";
import { sleepMs } from "./vendor-http-body.ts";

/**
 * The poller's main loop for one job:
 *
 *   standby -> lock acquired -> connect (GetJobState with the fencing
 *   token) -> cycle -> wait POLL_INTERVAL_MS -> cycle -> ...
 *
 * A cycle starts from the durable cursor, which only flusher acks move.
 * Losing the lock (the handle's signal, or the flusher reporting a newer
 * fencing token) stops sending at once, aborts the adapter, drops the
 * stream and returns to standby. A failed cycle is retried from the
 * durable cursor after a jittered backoff (cycleRetryBaseMs doubled per
 * failure in a row, capped by cycleRetryMaxMs). A completed cycle resets
 * it. Findings sent again by the retry are dropped by the flusher as
 * duplicates. `stop()` lets the page in flight finish, waits for its
 * acks (bounded by shutdownGraceMs) and releases the lock.
 */
export interface PollLoop {
  /** Resolves after a stop, or after the first cycle when `once` is set. */
  run(): Promise<void>;
  /** Requests a graceful stop; safe to call more than once. */
  stop(): void;
  status(): PollLoopStatus;
}

/**
 * A held job lock with its fencing token. The lock logs its own events
 * (lock.standby, lock.acquired, lock.lost when it detects the loss,
 * lock.released); the loop adds lock.lost when the flusher reports it.
 */
export interface JobLockHandle {
  readonly fencingToken: bigint;
  /** Fires when the lock is lost (compromised, stale, not renewed). */
  readonly signal: AbortSignal;
  /** Takes a token above `floor` while the lock is held. */
  refreshFencingToken?(floor: bigint): Promise<bigint>;
  release(): Promise<void>;
}

export interface JobLockLike {
  /** Waits (standby) until the lock is held; rejects when aborted. */
  acquire(signal: AbortSignal): Promise<JobLockHandle>;
}

/** Hooks for metrics; every one is optional. */
export interface PollLoopObserver {
  lockChanged?(held: boolean): void;
  pageFetched?(records: number): void;
  unackedChanged?(unacked: number): void;
  batchAcked?(ack: IncomingAck, latencyMs: number): void;
  cycleCompleted?(result: CycleResult, at: Date): void;
  cycleFailed?(code: string): void;
}

export interface PollLoopOptions {
  job: JobRef;
  adapter: VendorAdapter;
  /** Builds the VendorHttp of one cycle; `signal` aborts its requests. */
  createHttp(signal: AbortSignal): VendorHttp;
  lock: JobLockLike;
  flusher: FlusherClient;
  logger: Logger;
  pollIntervalMs: number;
  maxUnackedBatches: number;
  maxBatchRecords: number;
  backfillStart: Date;
  lookbackMs: number;
  /** Stop after the first completed cycle. */
  once?: boolean;
  /** Bound on finishing the page in flight and its acks at stop (30 s). */
  shutdownGraceMs?: number;
  /**
   * First delay after a failed cycle, doubled per failure in a row and
   * reset by a completed cycle (1000 ms).
   */
  cycleRetryBaseMs?: number;
  /** Cap of the delay after a failed cycle (60 000 ms). */
  cycleRetryMaxMs?: number;
  /**
   * Wait after a lost lock before competing for it again (1000 ms), so a
   * flusher that keeps reporting a newer token cannot make the loop spin.
   */
  lockRetryDelayMs?: number;
  now?: () => Date;
  observer?: PollLoopObserver;
  /** Overrides for the batch sender (reconnect and ack timeouts). */
  sender?: Pick<
    BatchSenderOptions,
    "reconnectBaseMs" | "reconnectMaxMs" | "ackTimeoutMs"
  >;
}

type TenureOutcome = "stopped" | "lock_lost";

export function createPollLoop(options: PollLoopOptions): PollLoop {
  const job = options.job;
  const fields = { vendor: job.vendor, source: job.source, job: jobId(job) };
  // pino repeats a key bound twice, so bind the job fields only when the
  // caller's logger does not carry them yet.
  const logger =
    options.logger.bindings().job === fields.job
      ? options.logger
      : options.logger.child(fields);
  const now = options.now ?? (() => new Date());
  const observer = options.observer ?? {};
  const shutdownGraceMs = options.shutdownGraceMs ?? 30_000;
  const retryBaseMs = options.cycleRetryBaseMs ?? 1_000;
  const retryMaxMs = options.cycleRetryMaxMs ?? 60_000;

  // stopController: a graceful stop was requested. hardStopController: the
  // grace period ran out, so everything stops at once.
  const stopController = new AbortController();
  const hardStopController = new AbortController();
  let currentCycle: CycleControl | null = null;
  const state = createPollStatus(now());
  const report = createCycleReporter({ logger, now, state, observer });

  async function run(): Promise<void> {
    while (!stopController.signal.aborted) {
      const handle = await acquireLock();
      if (!handle) break;
      const outcome = await runTenure(handle);
      if (outcome === "stopped") break;
      await sleepMs(
        options.lockRetryDelayMs ?? 1_000,
        stopController.signal,
        "lock retry",
      ).catch(() => undefined);
    }
    state.phase = "stopped";
  }

  function stop() {
    if (stopController.signal.aborted) return;
    state.phase = "stopping";
    logger.info(
      { event: "poller.stopping" },
      "stopping after the page in flight",
    );
    stopController.abort(new Error("stop requested"));
    currentCycle?.requestStop();
    const timer = setTimeout(() => {
      logger.warn(
        { event: "poller.stop_timed_out", durationMs: shutdownGraceMs },
        `page in flight not finished within ${shutdownGraceMs} ms, dropping it`,
      );
      hardStopController.abort(new Error("stop grace period over"));
    }, shutdownGraceMs);
    timer.unref?.();
  }

  async function acquireLock(): Promise<JobLockHandle | null> {
    state.phase = "standby";
    try {
      const handle = await options.lock.acquire(stopController.signal);
      state.activeSince = now();
      observer.lockChanged?.(true);
      return handle;
    } catch (error) {
      if (stopController.signal.aborted) return null;
      throw error;
    }
  }

  async function runTenure(handle: JobLockHandle): Promise<TenureOutcome> {
    const tenure = AbortSignal.any([handle.signal, hardStopController.signal]);
    let sender = createSender(handle, tenure);
    let outcome: TenureOutcome = "stopped";
    let lossCause: unknown = null;
    try {
      outcome = await runCycles(
        handle,
        tenure,
        () => sender,
        (next) => {
          sender = next;
        },
      );
    } catch (error) {
      if (isLockLoss(error, handle)) {
        outcome = "lock_lost";
        // A loss the lock detected itself was logged by the lock.
        lossCause = handle.signal.aborted ? null : error;
      } else if (!stopController.signal.aborted) {
        throw error;
      }
    } finally {
      sender.close();
      await finishTenure(handle, outcome, lossCause);
    }
    return outcome;
  }

  async function runCycles(
    handle: JobLockHandle,
    tenure: AbortSignal,
    getSender: () => BatchSender,
    replaceSender: (sender: BatchSender) => void,
  ): Promise<TenureOutcome> {
    state.phase = "connecting";
    const connected = await untilStopped(
      getSender().connect(),
      stopController.signal,
    );
    if (connected === "stopped") return "stopped";

    while (!stopController.signal.aborted) {
      state.phase = "syncing";
      const result = await runOneCycle(getSender(), tenure);
      if (result === "stopped") return "stopped";
      if (typeof result === "number") {
        if (getSender().failed) {
          replaceSender(createSender(handle, tenure));
          const reconnected = await untilStopped(
            getSender().connect(),
            stopController.signal,
          );
          if (reconnected === "stopped") return "stopped";
        }
        await waitBetweenCycles(tenure, result);
        continue;
      }
      if (options.once) return "stopped";
      await waitBetweenCycles(tenure, options.pollIntervalMs);
    }
    return "stopped";
  }

  async function runOneCycle(
    sender: BatchSender,
    tenure: AbortSignal,
  ): Promise<CycleResult | "stopped" | number> {
    const startedAt = now();
    try {
      const outcome = await runCycle({
        adapter: options.adapter,
        sender,
        cursor: sender.durableCursor,
        tenure,
        createHttp: options.createHttp,
        logger,
        now,
        maxBatchRecords: options.maxBatchRecords,
        backfillStart: options.backfillStart,
        lookbackMs: options.lookbackMs,
        source: job.source,
        onStart: (control) => {
          currentCycle = control;
          if (stopController.signal.aborted) control.requestStop();
        },
        onPageFetched: (records) => observer.pageFetched?.(records),
      });
      if (outcome === "stopped") return "stopped";
      report.completed(outcome, startedAt);
      return outcome;
    } catch (error) {
      if (tenure.aborted || isFatalForTenure(error)) throw error;
      // The number is the delay before the retry.
      const retryInMs = failureDelayMs(state.consecutiveFailures + 1);
      report.failed(error, startedAt, retryInMs);
      return retryInMs;
    } finally {
      currentCycle = null;
    }
  }

  async function waitBetweenCycles(tenure: AbortSignal, delayMs: number) {
    state.phase = "waiting";
    const wake = AbortSignal.any([tenure, stopController.signal]);
    await sleepMs(delayMs, wake, "poll interval").catch(() => undefined);
    if (tenure.aborted) throw tenure.reason ?? new Error("lock lost");
  }

  // Full delay for the n-th failure in a row, then jitter to half of it
  // so pollers failing together do not retry together.
  function failureDelayMs(failuresInRow: number): number {
    const attempt = Math.min(failuresInRow - 1, 30);
    const capped = Math.min(retryMaxMs, retryBaseMs * 2 ** attempt);
    return Math.round(capped / 2 + (Math.random() * capped) / 2);
  }

  async function finishTenure(
    handle: JobLockHandle,
    outcome: TenureOutcome,
    lossCause: unknown,
  ) {
    if (outcome === "lock_lost" && lossCause !== null) {
      logger.warn(
        {
          event: "lock.lost",
          fencingToken: String(handle.fencingToken),
          ...errorFields(lossCause),
        },
        "job lock lost, dropping unacked batches and returning to standby",
      );
    }
    try {
      await handle.release();
    } catch (error) {
      if (outcome !== "lock_lost") {
        logger.warn(
          { event: "lock.release_failed", ...errorFields(error) },
          "releasing the job lock failed",
        );
      }
    }
    state.activeSince = null;
    observer.lockChanged?.(false);
  }

  function createSender(handle: JobLockHandle, tenure: AbortSignal) {
    return createBatchSender({
      client: options.flusher,
      job,
      fencingToken: handle.fencingToken,
      maxUnackedBatches: options.maxUnackedBatches,
      logger,
      signal: tenure,
      lockSignal: handle.signal,
      refreshFencingToken: handle.refreshFencingToken?.bind(handle),
      onUnackedChanged: (unacked) => observer.unackedChanged?.(unacked),
      onAck: (ack, latencyMs) => observer.batchAcked?.(ack, latencyMs),
      ...options.sender,
    });
  }

  return { run, stop, status: () => ({ ...state }) };
}

// Nothing is in flight while connecting, so a stop ends the wait at once.
// The abandoned connect attempt ends when its sender is closed.
async function untilStopped<T>(
  promise: Promise<T>,
  stop: AbortSignal,
): Promise<T | "stopped"> {
  promise.catch(() => undefined);
  if (stop.aborted) return "stopped";
  let onStop = () => {};
  const stopped = new Promise<"stopped">((resolve) => {
    onStop = () => resolve("stopped");
    stop.addEventListener("abort", onStop, { once: true });
  });
  try {
    return await Promise.race([promise, stopped]);
  } finally {
    stop.removeEventListener("abort", onStop);
  }
}

function isLockLoss(error: unknown, handle: JobLockHandle): boolean {
  if (handle.signal.aborted) return true;
  const code = errorCodeOf(error);
  return code === "lock_lost" || code === "fencing_token_stale";
}

function isFatalForTenure(error: unknown): boolean {
  const code = errorCodeOf(error);
  return code === "lock_lost" || code === "fencing_token_stale";
}
