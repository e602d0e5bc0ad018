import type { Redis } from "ioredis";
import { sleep } from "./backoff.ts";
import { jobId, type JobRef } from "./job.ts";
import { errorFields, type Logger } from "./logger.ts";
import {
  isRedisUnavailableError,
  loadLuaScript,
  retryWhileRedisUnavailable,
  runLuaScript,
  unexpectedReplyError,
} from "./redis-client.ts";
import type { RedisKeys } from "./redis-keys.ts";

export interface PauseGateOptions {
  redis: Redis;
  keys: RedisKeys;
  job: JobRef;
  logger: Logger;
}

export interface PauseGate {
  /**
   * Pauses every poller of the job for `ms` from now (Redis clock). An
   * existing longer pause is kept: the pause only ever grows. `reason` is
   * logged, for example "HTTP 429 retry-after 30 s". Resolves once Redis
   * stored the pause, or after at most 10 s of Redis outage, when the
   * pause applies to this process only (logged as vendor.pause_not_shared).
   */
  pauseFor(ms: number, reason: string): Promise<void>;
  /** Resolves when no pause is active; rejects with AbortedError. */
  waitUntilClear(signal?: AbortSignal): Promise<{ waitedMs: number }>;
}

/**
 * Creates the pause gate of one job: the shared "paused until" time that a
 * vendor's back-pressure (HTTP 429, Qualys 409 code 1965) sets.
 *
 * The pause lives in Redis so that every process obeys it. This process
 * also keeps its own copy, so it obeys its pause even when Redis could not
 * store it. While Redis is down pauseFor() keeps trying until the pause
 * would have ended; no permit is granted meanwhile anyway. If Redis loses
 * its data the shared pause is lost, and the vendor's next refusal sets
 * it again.
 */
export function createPauseGate(options: PauseGateOptions): PauseGate {
  const { redis, keys, job } = options;
  const logger = options.logger.child({ area: "pause", job: jobId(job) });
  const operation = `pause ${jobId(job)}`;
  // Local copy of the pause end, on the monotonic clock.
  let localUntilMs = 0;

  const remainingMs = async (signal?: AbortSignal) => {
    const reply = await retryWhileRedisUnavailable(
      () => runLuaScript(redis, REMAINING_SCRIPT, [keys.pause(job)], []),
      { redis, logger, signal, operation },
    );
    const shared = parseRemainingReply(reply);
    return Math.max(shared, localUntilMs - performance.now());
  };

  return {
    async pauseFor(ms, reason) {
      if (!Number.isFinite(ms) || ms < 0) {
        throw new RangeError(`invalid pause of ${ms} ms for ${jobId(job)}`);
      }
      const pauseMs = Math.max(1, Math.ceil(ms));
      const untilMs = performance.now() + pauseMs;
      localUntilMs = Math.max(localUntilMs, untilMs);

      const reply = await storePause(pauseMs, untilMs);
      if (!reply) return;
      logger[reply.extended ? "warn" : "info"](
        {
          event: reply.extended ? "vendor.paused" : "vendor.pause_kept",
          pauseMs,
          pausedUntil: new Date(reply.untilMs).toISOString(),
          reason,
        },
        `${jobId(job)}: requests paused: ${reason}`,
      );
    },

    async waitUntilClear(signal) {
      const startedMs = performance.now();
      for (;;) {
        const waitMs = await remainingMs(signal);
        if (waitMs <= 0) return { waitedMs: performance.now() - startedMs };
        await sleep(Math.ceil(waitMs), signal, operation);
      }
    },
  };

  async function storePause(pauseMs: number, untilMs: number) {
    // Bounded: once the pause would have ended, storing it no longer
    // matters, and a caller should not hang on a long Redis outage while
    // no process can get a permit anyway.
    const signal = AbortSignal.timeout(Math.min(pauseMs, STORE_TIMEOUT_MS));
    try {
      const reply = await retryWhileRedisUnavailable(
        () => runLuaScript(redis, EXTEND_SCRIPT, [keys.pause(job)], [pauseMs]),
        { redis, logger, signal, operation },
      );
      return parseExtendReply(reply);
    } catch (error) {
      if (!signal.aborted && !isRedisUnavailableError(error)) throw error;
      logger.warn(
        {
          event: "vendor.pause_not_shared",
          pauseMs,
          remainingMs: Math.max(0, Math.round(untilMs - performance.now())),
          ...errorFields(error),
        },
        `${jobId(job)}: pause applied to this process only`,
      );
      return null;
    }
  }
}

const STORE_TIMEOUT_MS = 10_000;
const EXTEND_SCRIPT = loadLuaScript("pause-extend");
const REMAINING_SCRIPT = loadLuaScript("pause-remaining");

/** Turns the reply of pause-extend.lua into a typed result. */
function parseExtendReply(reply: unknown) {
  const [code, untilMs] = Array.isArray(reply) ? reply : [];
  if ((code !== 0 && code !== 1) || typeof untilMs !== "number") {
    throw unexpectedReplyError(EXTEND_SCRIPT, reply);
  }
  return { extended: code === 1, untilMs };
}

/** Turns the reply of pause-remaining.lua into milliseconds left. */
function parseRemainingReply(reply: unknown): number {
  const [remainingMs] = Array.isArray(reply) ? reply : [];
  if (typeof remainingMs !== "number" || remainingMs < 0) {
    throw unexpectedReplyError(REMAINING_SCRIPT, reply);
  }
  return remainingMs;
}
