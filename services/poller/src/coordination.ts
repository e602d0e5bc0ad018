import { existsSync } from "node:fs";
import {
  createJobLock,
  createPauseGate,
  createRateLimiter,
  createRedisClient,
  createSemaphore,
  createVendorGate,
  jobId,
  type Logger,
  type RedisKeys,
} from "@vulnsub/shared";
import type { AdvertisedLimit } from "./adapter.ts";
import type { PollerConfig } from "./config.ts";
import type { JobLockLike } from "./poll-loop.ts";
import type { PollerMetrics } from "./poller-metrics.ts";
import type { VendorGateLike } from "./vendor-http.ts";

/**
 * Lease length of a concurrency slot without renewal. The semaphore renews
 * held leases, so this only bounds how long a killed poller keeps a slot.
 */
const SLOT_LEASE_MS = 30_000;

/** The Redis connection as the health check reports it. */
export interface RedisState {
  up: boolean;
  /** When `up` last changed (or the start). */
  since: Date;
  /** Message of the newest connection error while down. */
  lastError: string | null;
}

/**
 * Everything the poller shares with other pollers through Redis: the rate
 * limit, the vendor pause, the concurrency slots and the fencing tokens of
 * the job lock.
 */
export function createCoordination(options: {
  config: PollerConfig;
  keys: RedisKeys;
  logger: Logger;
  metrics: PollerMetrics;
}) {
  const { config, keys, metrics } = options;
  const { job } = config;
  // The shared modules add `job` themselves; vendor and source come here.
  const logger = options.logger.child({
    vendor: job.vendor,
    source: job.source,
  });
  const redis = createRedisClient({
    url: config.redisUrl,
    logger: logger.child({ job: jobId(job) }),
    name: `vulnsub-poller-${job.vendor}-${job.source}`,
  });
  const redisState: RedisState = {
    up: false,
    since: new Date(),
    lastError: null,
  };
  const setRedisUp = (up: boolean) => {
    metrics.setRedisUp(up);
    if (redisState.up === up) return;
    redisState.up = up;
    redisState.since = new Date();
    if (up) redisState.lastError = null;
  };
  setRedisUp(false);
  redis.on("ready", () => setRedisUp(true));
  redis.on("close", () => setRedisUp(false));
  redis.on("error", (error: unknown) => {
    redisState.lastError =
      error instanceof Error ? error.message : String(error);
  });

  const rateLimiter = createRateLimiter({
    redis,
    keys,
    job,
    requests: config.rateLimit.requests,
    windowMs: config.rateLimit.windowMs,
    logger,
  });
  const pauseGate = createPauseGate({ redis, keys, job, logger });
  const semaphore =
    config.maxConcurrentRequests > 0
      ? createSemaphore({
          redis,
          keys,
          job,
          name: "requests",
          limit: config.maxConcurrentRequests,
          leaseMs: SLOT_LEASE_MS,
          logger,
        })
      : null;
  const vendorGate = createVendorGate({
    rateLimiter,
    pauseGate,
    semaphore,
    logger: logger.child({ job: jobId(job) }),
  });
  const jobLock = createJobLock({
    stateDir: config.stateDir,
    job,
    staleMs: config.lockStaleMs,
    redis,
    keys,
    logger,
  });

  const gate: VendorGateLike = {
    acquire: (signal) => vendorGate.acquire(signal),
    pauseFor: (ms, reason) => pauseGate.pauseFor(ms, reason),
  };

  // The lock directory exists while another process holds the lock or
  // after one died holding it, so acquiring past it is a takeover.
  const lock: JobLockLike = {
    async acquire(signal) {
      const contended = existsSync(`${jobLock.path}.lock`);
      const handle = await jobLock.acquire(signal);
      if (contended) {
        metrics.takeover();
        logger.info(
          { event: "lock.taken_over", job: jobId(job) },
          "took over the job lock from another poller",
        );
      }
      return handle;
    },
  };

  return {
    gate,
    lock,
    redisState: (): RedisState => ({ ...redisState }),
    onAdvertisedLimit: (limit: AdvertisedLimit) =>
      rateLimiter.setAdvertisedLimit({
        requests: limit.requests,
        windowMs: limit.windowMs,
      }),
    // The vendor's own limit caps ours; the configured one may be lower.
    onConcurrencyLimit: (limit: number) =>
      semaphore?.setLimit(Math.min(limit, config.maxConcurrentRequests)),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
