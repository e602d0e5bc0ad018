import {
  ingestProto,
  ServingStatus,
  type HealthReport,
  type HealthService,
  type Logger,
} from "@vulnsub/shared";
import type { FlusherMetrics } from "./flusher-metrics.ts";
import type { JournalFailure, JournalStatus } from "./journal-writer.ts";

export interface FlusherHealthz {
  /** The /healthz body: healthy, reason, gRPC status and log status. */
  report(): HealthReport;
  /** Brings the gRPC status and the gauge in line with the log now. */
  refresh(): void;
  close(): void;
}

export interface FlusherHealthzOptions {
  health: HealthService;
  metrics: FlusherMetrics;
  logger: Logger;
  journalStatus: () => JournalStatus | null;
  /** The newest failed group commit, null once a later one succeeded. */
  journalFailure?: () => JournalFailure | null;
  /** True once the flusher is stopping; health never returns to SERVING. */
  stopping?: () => boolean;
}

const INGEST_SERVICE = ingestProto.Ingest.typeName;

/** How often the serving gauge and the gRPC status follow the log state. */
const REFRESH_INTERVAL_MS = 1_000;

/**
 * Judges the flusher's health for /healthz and keeps the gRPC health in
 * line with it. While the newest group commit failed (write or fsync
 * error), both "" and vulnsub.v1.Ingest are NOT_SERVING and a probe gets
 * the error and its time; the next group written turns them SERVING
 * again. A writer that cannot truncate stays failed until a restart.
 */
export function createFlusherHealthz(
  options: FlusherHealthzOptions,
): FlusherHealthz {
  const { health, metrics, logger } = options;
  const stopping = options.stopping ?? (() => false);
  let degraded = false;

  const report = (): HealthReport => {
    const journal = options.journalStatus();
    const grpcStatus = ServingStatus[health.getStatus("")];
    const details = { grpcStatus, journal: journal ?? "recovering" };
    const problem = stopping() ? null : journalProblem(options);
    if (problem !== null) {
      return { healthy: false, reason: problem, ...details };
    }
    if (health.getStatus("") === ServingStatus.SERVING) {
      return { healthy: true, reason: "serving", ...details };
    }
    const reason =
      journal === null && !stopping()
        ? "recovering the findings log"
        : "stopping";
    return { healthy: false, reason, ...details };
  };

  const refresh = () => {
    const problem = stopping() ? null : journalProblem(options);
    if (problem !== null && !degraded) {
      degraded = true;
      setStatus(health, ServingStatus.NOT_SERVING);
      logger.error(
        { event: "health.changed", healthy: false, reason: problem },
        `flusher NOT_SERVING: ${problem}`,
      );
    } else if (problem === null && degraded && !stopping()) {
      degraded = false;
      setStatus(health, ServingStatus.SERVING);
      logger.info(
        { event: "health.changed", healthy: true, reason: "serving" },
        "flusher SERVING again: a group commit succeeded",
      );
    }
    metrics.serving.set(report().healthy ? 1 : 0);
  };

  refresh();
  const timer = setInterval(refresh, REFRESH_INTERVAL_MS);
  timer.unref?.();

  return {
    report: () => {
      refresh();
      return report();
    },
    refresh,
    close: () => clearInterval(timer),
  };
}

/** Returns why the findings log cannot take batches now, or null. */
function journalProblem(options: FlusherHealthzOptions): string | null {
  const journal = options.journalStatus();
  const failure = options.journalFailure?.() ?? null;
  const detail = failure
    ? `: ${failure.error.message} at ${new Date(failure.atMs).toISOString()}`
    : "";
  if (journal === "failed") {
    return (
      "findings log writes failed (see journal.failed); fix the disk " +
      `and restart the flusher${detail}`
    );
  }
  if (journal === "recovering") {
    return `truncating the findings log after a failed write${detail}`;
  }
  if (failure) return `findings log write failed${detail}`;
  return null;
}

function setStatus(health: HealthService, status: ServingStatus): void {
  health.setStatus("", status);
  health.setStatus(INGEST_SERVICE, status);
}
