import {
  createHealthService,
  jobId,
  ServingStatus,
  type HealthReport,
  type HealthService,
  type JobRef,
  type Logger,
} from "@vulnsub/shared";
import type { RedisState } from "./coordination.ts";
import type { PollLoopStatus } from "./poll-status.ts";

/** The verdict of one health check; `reason` is one line for operators. */
export interface HealthVerdict {
  healthy: boolean;
  reason: string;
}

export interface HealthLimits {
  pollIntervalMs: number;
  /** Unhealthy after staleFactor x pollIntervalMs without a cycle. */
  staleFactor: number;
  now: Date;
  /** The Redis connection; omitted means not checked. */
  redis?: RedisState;
}

/**
 * Judges a poller's health from its loop status, in this order:
 * - stopping or stopped: unhealthy;
 * - Redis not connected: unhealthy, since no request can get a permit and
 *   no fencing token can be taken;
 * - standby (another poller holds the job lock): healthy;
 * - no cycle completed yet and the last one failed: unhealthy;
 * - no cycle completed for longer than staleFactor x pollIntervalMs since
 *   the last completed cycle (or since the lock was taken): unhealthy;
 * - otherwise healthy, also after a cycle that found 0 findings and after
 *   a failed cycle that is still within the limit.
 */
export function assessHealth(
  status: PollLoopStatus,
  limits: HealthLimits,
): HealthVerdict {
  if (status.phase === "stopping" || status.phase === "stopped") {
    return { healthy: false, reason: `poller ${status.phase}` };
  }
  if (limits.redis && !limits.redis.up) {
    const error = limits.redis.lastError ? `: ${limits.redis.lastError}` : "";
    const since = limits.redis.since.toISOString();
    return {
      healthy: false,
      reason: `redis not connected since ${since}${error}`,
    };
  }
  if (status.phase === "standby") {
    return {
      healthy: true,
      reason: "standby: another poller holds the job lock",
    };
  }
  if (status.lastCompletedAt === null && status.lastError) {
    return {
      healthy: false,
      reason:
        `first cycle failing (${status.consecutiveFailures} attempts): ` +
        `${status.lastError.code}: ${status.lastError.message}`,
    };
  }
  return assessStaleness(status, limits);
}

/** Name of a job's service in the poller's grpc.health.v1 server. */
export function jobHealthServiceName(job: JobRef): string {
  return `vulnsub.poller.${job.vendor}.${job.source}`;
}

export interface PollerHealthOptions {
  job: JobRef;
  status: () => PollLoopStatus;
  redis: () => RedisState;
  pollIntervalMs: number;
  staleFactor: number;
  logger: Logger;
  onChange?: (healthy: boolean) => void;
  now?: () => Date;
  /** Time between two checks that update the gRPC status (1000 ms). */
  refreshIntervalMs?: number;
}

export interface PollerHealth {
  /** grpc.health.v1 service with "" and the job's service name. */
  readonly service: HealthService;
  /** Checks now and returns the /healthz body. */
  report(): HealthReport;
  /** Sets every status NOT_SERVING, ends Watch calls, stops checking. */
  close(): void;
}

/**
 * Checks the poller's health every second and on each /healthz request,
 * and mirrors the verdict into the gRPC statuses of "" and the job's
 * service. Each change logs `health.changed`: error when the job turns
 * unhealthy, because a person has to look, and info on recovery.
 */
export function createPollerHealth(options: PollerHealthOptions): PollerHealth {
  const now = options.now ?? (() => new Date());
  const serviceName = jobHealthServiceName(options.job);
  const service = createHealthService({
    "": ServingStatus.SERVING,
    [serviceName]: ServingStatus.SERVING,
  });
  const logger = options.logger.child({ area: "health" });
  let healthy = true;

  const report = (): HealthReport => {
    const status = options.status();
    const redis = options.redis();
    const verdict = assessHealth(status, {
      pollIntervalMs: options.pollIntervalMs,
      staleFactor: options.staleFactor,
      now: now(),
      redis,
    });
    apply(verdict, status);
    return {
      ...verdict,
      ...describeStatus(status, redis),
      job: jobId(options.job),
      healthService: serviceName,
      staleAfterMs: options.staleFactor * options.pollIntervalMs,
    };
  };

  const apply = (verdict: HealthVerdict, status: PollLoopStatus) => {
    const servingStatus = verdict.healthy
      ? ServingStatus.SERVING
      : ServingStatus.NOT_SERVING;
    service.setStatus("", servingStatus);
    service.setStatus(serviceName, servingStatus);
    if (verdict.healthy === healthy) return;

    healthy = verdict.healthy;
    options.onChange?.(healthy);
    // A stop is announced by poller.stopping; it needs no alarm.
    if (status.phase === "stopping" || status.phase === "stopped") return;
    const fields = { event: "health.changed", healthy, reason: verdict.reason };
    if (healthy) logger.info(fields, `healthy again: ${verdict.reason}`);
    else logger.error(fields, `unhealthy: ${verdict.reason}`);
  };

  const timer = setInterval(report, options.refreshIntervalMs ?? 1_000);
  timer.unref?.();

  return {
    service,
    report,
    close() {
      clearInterval(timer);
      service.close();
    },
  };
}

function assessStaleness(
  status: PollLoopStatus,
  limits: HealthLimits,
): HealthVerdict {
  const since = latest(status.lastCompletedAt, status.activeSince);
  const limitMs = limits.staleFactor * limits.pollIntervalMs;
  const ageMs = since ? limits.now.getTime() - since.getTime() : 0;
  const lastError = status.lastError
    ? `; last cycle failed: ${status.lastError.code}`
    : "";
  if (ageMs > limitMs) {
    return {
      healthy: false,
      reason:
        `no cycle completed for ${Math.round(ageMs / 1000)} s ` +
        `(limit ${Math.round(limitMs / 1000)} s)${lastError}`,
    };
  }
  const at = status.lastCompletedAt?.toISOString() ?? "none yet";
  const findings = status.lastCycle
    ? `, ${status.lastCycle.records} findings`
    : "";
  return {
    healthy: true,
    reason:
      `${status.phase}; last cycle completed ${at}${findings}` + lastError,
  };
}

function describeStatus(status: PollLoopStatus, redis: RedisState) {
  return {
    phase: status.phase,
    activeSince: status.activeSince?.toISOString() ?? null,
    lastCompletedAt: status.lastCompletedAt?.toISOString() ?? null,
    lastCycle: status.lastCycle,
    consecutiveFailures: status.consecutiveFailures,
    lastError: status.lastError
      ? {
          ...status.lastError,
          at: status.lastFailedAt?.toISOString() ?? null,
        }
      : null,
    lastFailedAt: status.lastFailedAt?.toISOString() ?? null,
    redis: {
      up: redis.up,
      since: redis.since.toISOString(),
      lastError: redis.lastError,
    },
  };
}

function latest(a: Date | null, b: Date | null): Date | null {
  if (!a) return b;
  if (!b) return a;
  return a > b ? a : b;
}
