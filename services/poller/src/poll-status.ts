import { errorCodeOf, errorFields, type Logger } from "@vulnsub/shared";
import type { CycleResult } from "./cycle-runner.ts";
import type { PollLoopObserver } from "./poll-loop.ts";

export type PollPhase =
  | "standby" // waiting for the job lock
  | "connecting" // holding the lock, waiting for the flusher
  | "syncing" // a cycle is running
  | "waiting" // between cycles, or backing off after a failure
  | "stopping"
  | "stopped";

export interface PollLoopStatus {
  phase: PollPhase;
  startedAt: Date;
  /** When this process took the job lock; null while it does not hold it. */
  activeSince: Date | null;
  lastCompletedAt: Date | null;
  /** Totals of the last completed cycle; 0 records is a valid outcome. */
  lastCycle: CycleResult | null;
  /** Consecutive failed cycles since the last completed one. */
  consecutiveFailures: number;
  /** Error of the newest failed cycle; cleared when a cycle completes. */
  lastError: { code: string; message: string } | null;
  /** When the newest failed cycle failed, kept after a completed one. */
  lastFailedAt: Date | null;
}

export function createPollStatus(startedAt: Date): PollLoopStatus {
  return {
    phase: "standby",
    startedAt,
    activeSince: null,
    lastCompletedAt: null,
    lastCycle: null,
    consecutiveFailures: 0,
    lastError: null,
    lastFailedAt: null,
  };
}

/**
 * Logs cycle.completed and cycle.failed, updates the loop status that
 * /healthz reads, and calls the metrics observer.
 */
export function createCycleReporter(options: {
  logger: Logger;
  now: () => Date;
  state: PollLoopStatus;
  observer: PollLoopObserver;
}) {
  const { logger, now, state, observer } = options;

  return {
    completed(result: CycleResult, startedAt: Date) {
      const at = now();
      state.lastCompletedAt = at;
      state.lastCycle = { ...result };
      state.consecutiveFailures = 0;
      state.lastError = null;
      logger.info(
        {
          event: "cycle.completed",
          records: result.records,
          written: result.written,
          duplicates: result.duplicates,
          pages: result.pages,
          cursor: result.cursor,
          durationMs: at.getTime() - startedAt.getTime(),
        },
        `cycle completed: ${result.records} records, ` +
          `${result.written} written`,
      );
      observer.cycleCompleted?.(result, at);
    },

    failed(error: unknown, startedAt: Date, retryInMs: number) {
      state.consecutiveFailures++;
      const message = error instanceof Error ? error.message : String(error);
      state.lastError = { code: errorCodeOf(error), message };
      state.lastFailedAt = now();
      // Warn: the next cycle retries from the durable cursor after
      // retryInMs, so nothing is lost. A job that keeps failing turns
      // unhealthy, logged as error.
      logger.warn(
        {
          event: "cycle.failed",
          attempt: state.consecutiveFailures,
          retryInMs,
          durationMs: now().getTime() - startedAt.getTime(),
          ...errorFields(error),
        },
        `cycle failed, retrying in ${retryInMs} ms: ${message}`,
      );
      observer.cycleFailed?.(state.lastError.code);
    },
  };
}
