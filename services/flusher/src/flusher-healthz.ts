import {
  ingestProto,
  ServingStatus,
  type HealthReport,
  type HealthService,
  type Logger,
} from "@vulnsub/shared";
import type { FlusherMetrics } from "./flusher-metrics.ts";
import type { JournalStatus } from "./journal-writer.ts";

export interface FlusherHealthz {
  /** The /healthz body: healthy, reason, gRPC status and log status. */
  report(): HealthReport;
  close(): void;
}

export interface FlusherHealthzOptions {
  health: HealthService;
  metrics: FlusherMetrics;
  logger: Logger;
  journalStatus: () => JournalStatus | null;
}

const INGEST_SERVICE = ingestProto.Ingest.typeName;

/** How often the serving gauge and the gRPC status follow the log state. */
const REFRESH_INTERVAL_MS = 1_000;

/**
 * Judges the flusher's health for /healthz and keeps the gRPC health in
 * line with it. A findings log whose writer failed stays failed until a
 * restart, so it turns both "" and vulnsub.v1.Ingest NOT_SERVING and a
 * probe reports what the journal.failed log line reports.
 */
export function createFlusherHealthz(
  options: FlusherHealthzOptions,
): FlusherHealthz {
  const { health, metrics, logger } = options;
  let reportedFailure = false;

  const report = (): HealthReport => {
    const journal = options.journalStatus();
    const grpcStatus = ServingStatus[health.getStatus("")];
    const details = { grpcStatus, journal: journal ?? "recovering" };
    if (journal === "failed") {
      return {
        healthy: false,
        reason:
          "findings log writes failed (see journal.failed); fix the disk " +
          "and restart the flusher",
        ...details,
      };
    }
    if (journal === "recovering") {
      return {
        healthy: false,
        reason: "truncating the findings log after a failed write",
        ...details,
      };
    }
    if (health.getStatus("") === ServingStatus.SERVING) {
      return { healthy: true, reason: "serving", ...details };
    }
    const reason =
      journal === null ? "recovering the findings log" : "stopping";
    return { healthy: false, reason, ...details };
  };

  const refresh = () => {
    const current = report();
    metrics.serving.set(current.healthy ? 1 : 0);
    if (options.journalStatus() !== "failed" || reportedFailure) return;

    reportedFailure = true;
    health.setStatus("", ServingStatus.NOT_SERVING);
    health.setStatus(INGEST_SERVICE, ServingStatus.NOT_SERVING);
    logger.error(
      { event: "health.changed", healthy: false, reason: current.reason },
      `flusher NOT_SERVING: ${current.reason}`,
    );
  };

  refresh();
  const timer = setInterval(refresh, REFRESH_INTERVAL_MS);
  timer.unref?.();

  return {
    report: () => {
      refresh();
      return report();
    },
    close: () => clearInterval(timer),
  };
}
