/**
 * Rate limiter shared by every poller of one vendor account.
 *
 * Invariants:
 * - Across all processes, at most `requests` permits are granted in any
 *   rolling window of `windowMs + marginMs`, on the Redis clock. A request
 *   that reaches the vendor within `marginMs` of its grant therefore keeps
 *   the vendor's count at or below `requests` in every rolling `windowMs`
 *   window: the margin absorbs the delay between the grant and the
 *   vendor's arrival (reply, event loop, connect, network), so two permits
 *   granted just over a window apart cannot arrive inside one window.
 *   Default 250 ms; loopback tests may use less.
 *   NOTE: 250 ms is an estimate for a warm connection. A first request
 *   that opens a TLS connection, or a process that is still starting, can
 *   take longer; the guarantee then holds only if the margin is raised.
 * - A permit is granted only while the job is not paused, checked in the
 *   same atomic step, so a pause never wastes a permit.
 * - The configured and the advertised limit (vendor headers) are enforced
 *   together: a permit needs room in both windows, which is the stricter
 *   of the two for any window length and needs no conversion between
 *   windows of different lengths.
 * - No permit without Redis: while Redis is down acquire() waits and
 *   retries, logging `redis.unavailable` once per interval.
 * - Use a permit at once. Holding it (for example while waiting for a
 *   semaphore slot) moves the vendor arrival past the margin.
 *
 * Redis layout: see redis-keys.ts. The permit log is a sorted set of
 * permit ids scored by grant time in microseconds, trimmed to the longest
 * window on every call and expiring when idle.
 *
 * Crash behaviour:
 * - A process killed after the script granted a permit leaves the permit
 *   in the log, whether or not the request was sent. The permit only
 *   counts against the window, which is safe.
 * - A reply lost with the connection may hide a granted permit; the retry
 *   takes a second one. Again only a wasted slot.
 * - Redis restarting without its data loses the log. Clients that saw the
 *   epoch marker before notice it missing or changed and fill the log with
 *   placeholders, blocking one configured window.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { sleep } from "./backoff.ts";
import { jobId, type JobRef } from "./job.ts";
import { errorFields, type Logger } from "./logger.ts";
import {
  loadLuaScript,
  retryWhileRedisUnavailable,
  runLuaScript,
  unexpectedReplyError,
} from "./redis-client.ts";
import type { RedisKeys } from "./redis-keys.ts";

export interface RateLimit {
  /** Requests allowed in any rolling window (>= 1). */
  requests: number;
  /** Window length in milliseconds (>= 1). */
  windowMs: number;
}

export interface RateLimiterOptions extends RateLimit {
  redis: Redis;
  keys: RedisKeys;
  job: JobRef;
  /** Added to every window; see the invariants above. Default 250. */
  marginMs?: number;
  logger: Logger;
}

export interface RatePermit {
  /** Time acquire() spent waiting, in milliseconds (host clock). */
  waitedMs: number;
  /** Redis time of the grant, in microseconds since the epoch. */
  grantedAtUs: number;
}

export interface RateLimiter {
  /** Waits for a permit; rejects with AbortedError when `signal` fires. */
  acquire(signal?: AbortSignal): Promise<RatePermit>;
  /**
   * Records the limit the vendor advertises (Qualys X-RateLimit-Limit and
   * X-RateLimit-Window-Sec), or null when it stopped advertising one. It
   * applies at once to this process and, after a write to Redis, to every
   * poller of the account. An invalid limit is logged and ignored.
   */
  setAdvertisedLimit(limit: RateLimit | null): void;
}

/** Creates the rate limiter of one job; the limit is `requests`/`windowMs`. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { redis, keys, job } = options;
  const marginMs = options.marginMs ?? 250;
  if (!isValidLimit(options)) {
    throw new RangeError(
      `invalid rate limit ${options.requests} requests per ` +
        `${options.windowMs} ms: expected integers >= 1`,
    );
  }
  if (!Number.isInteger(marginMs) || marginMs < 0) {
    throw new RangeError(`invalid rate limit margin ${marginMs} ms`);
  }

  const logger = options.logger.child({ area: "ratelimit", job: jobId(job) });
  const idPrefix = randomBytes(6).toString("hex");
  let sequence = 0;
  let epoch = "";
  let advertised: RateLimit | null = null;
  let storedAtMs = Number.NEGATIVE_INFINITY;

  const tryAcquire = () =>
    runLuaScript(
      redis,
      ACQUIRE_SCRIPT,
      [
        keys.rateLimit(job),
        keys.pause(job),
        keys.advertisedLimit(job),
        keys.epoch(),
      ],
      [
        `${idPrefix}:${++sequence}`,
        marginMs,
        epoch,
        randomBytes(8).toString("hex"),
        options.requests,
        options.windowMs,
        advertised?.requests ?? 0,
        advertised?.windowMs ?? 0,
      ],
    );

  return {
    async acquire(signal) {
      const startedMs = performance.now();
      for (;;) {
        const reply = parseAcquireReply(
          await retryWhileRedisUnavailable(tryAcquire, {
            redis,
            logger,
            signal,
            operation: `rate limit ${jobId(job)}`,
          }),
        );
        epoch = reply.epoch;
        if (reply.outcome === "granted") {
          const waitedMs = performance.now() - startedMs;
          return { waitedMs, grantedAtUs: reply.nowUs };
        }
        if (reply.outcome === "data_lost") {
          logger.warn(
            { event: "ratelimit.data_lost", durationMs: reply.waitMs },
            "redis lost the permit log; blocking one window",
          );
        }

        // One extra millisecond: the wait is rounded up to whole ms, and
        // the permit leaves the window strictly after its score + window.
        await sleep(reply.waitMs + 1, signal, `rate limit ${jobId(job)}`);
      }
    },

    setAdvertisedLimit(limit) {
      if (limit !== null && !isValidLimit(limit)) {
        logger.warn(
          { event: "ratelimit.advertised_invalid", ...limit },
          "ignored an invalid advertised rate limit",
        );
        return;
      }
      const changed =
        limit?.requests !== advertised?.requests ||
        limit?.windowMs !== advertised?.windowMs;
      advertised = limit;
      if (changed) {
        logger.info(
          { event: "ratelimit.advertised_changed", ...limit },
          "vendor advertised a new rate limit",
        );
      }

      // Vendors repeat the limit on every response; a write per response
      // is not needed to keep the stored copy from expiring.
      const nowMs = performance.now();
      if (!changed && nowMs - storedAtMs < ADVERTISED_REFRESH_MS) return;
      storedAtMs = nowMs;
      const key = keys.advertisedLimit(job);
      void storeAdvertisedLimit(redis, key, limit).catch((error: unknown) => {
        storedAtMs = Number.NEGATIVE_INFINITY;
        logger.warn(
          { event: "ratelimit.advertised_store_failed", ...errorFields(error) },
          "cannot share the advertised limit; it applies locally only",
        );
      });
    },
  };
}

const ACQUIRE_SCRIPT = loadLuaScript("rate-limit-acquire");

// The stored advertised limit expires a day after its last refresh, so a
// limit the vendor stopped sending does not apply forever.
const ADVERTISED_TTL_MS = 24 * 60 * 60 * 1000;
const ADVERTISED_REFRESH_MS = 60 * 60 * 1000;

async function storeAdvertisedLimit(
  redis: Redis,
  key: string,
  limit: RateLimit | null,
) {
  if (limit === null) {
    await redis.del(key);
    return;
  }
  await redis
    .multi()
    .hset(key, "requests", limit.requests, "windowMs", limit.windowMs)
    .pexpire(key, ADVERTISED_TTL_MS)
    .exec();
}

function isValidLimit({ requests, windowMs }: RateLimit): boolean {
  return (
    Number.isInteger(requests) &&
    requests >= 1 &&
    Number.isInteger(windowMs) &&
    windowMs >= 1
  );
}

type AcquireOutcome = "granted" | "window_full" | "paused" | "data_lost";
const OUTCOMES: Record<number, AcquireOutcome> = {
  1: "granted",
  2: "window_full",
  3: "paused",
  4: "data_lost",
};

/** Turns the reply of rate-limit-acquire.lua into a typed result. */
function parseAcquireReply(reply: unknown) {
  const [code, waitMs, nowUs, epoch] = Array.isArray(reply) ? reply : [];
  const outcome = OUTCOMES[Number(code)];
  if (!outcome || typeof epoch !== "string") {
    throw unexpectedReplyError(ACQUIRE_SCRIPT, reply);
  }
  return { outcome, waitMs: Number(waitMs), nowUs: Number(nowUs), epoch };
}
