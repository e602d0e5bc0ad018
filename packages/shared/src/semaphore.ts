/**
 * Counting semaphore shared by every poller of one vendor account: at most
 * `limit` leases are held at once, for example the two concurrent Qualys
 * API calls or the two Tenable exports of a container.
 *
 * Invariants:
 * - At most `limit` unexpired leases exist in Redis at any time, on the
 *   Redis clock; grants and renewals are atomic scripts.
 * - A lease expires `leaseMs` after its last renewal unless renewed. The
 *   holder renews every leaseMs/3, so a holder that dies (SIGKILL) frees
 *   its slot at most `leaseMs` after its last renewal.
 * - A holder that cannot renew before its lease expires (Redis down, a
 *   stalled process) treats the lease as lost: `lease.signal` aborts and
 *   the lease is never renewed again, because its slot may belong to
 *   someone else by then.
 *
 * Redis layout: one sorted set per semaphore (see redis-keys.ts), member =
 * lease id, score = expiry in Redis milliseconds. Expired members are
 * removed by every script call; the key expires when idle.
 *
 * Crash behaviour:
 * - Killed after the grant but before using the slot: the slot stays taken
 *   until the lease expires.
 * - Killed while holding: same, at most `leaseMs` after the last renewal.
 * - Redis loses its data: every lease vanishes. Holders see their next
 *   renewal fail and abort their lease signals, and new acquirers start
 *   from an empty set.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { sleep } from "./backoff.ts";
import { VulnsubError } from "./errors.ts";
import { jobId, type JobRef } from "./job.ts";
import { errorFields, type Logger } from "./logger.ts";
import {
  loadLuaScript,
  retryWhileRedisUnavailable,
  runLuaScript,
  unexpectedReplyError,
} from "./redis-client.ts";
import type { RedisKeys } from "./redis-keys.ts";

export interface SemaphoreOptions {
  redis: Redis;
  keys: RedisKeys;
  job: JobRef;
  /** Key part naming the semaphore: "requests", "exports". */
  name: string;
  /** Leases held at once (>= 1). */
  limit: number;
  /** Lease length without renewal, milliseconds (>= 300). */
  leaseMs: number;
  logger: Logger;
  /** Maximum wait between two tries while all slots are taken; 100 ms. */
  pollMs?: number;
}

export interface Lease {
  readonly id: string;
  /** Aborted when the lease was lost (renewal failed past its expiry). */
  readonly signal: AbortSignal;
  /** Frees the slot; safe to call twice. */
  release(): Promise<void>;
}

export interface Semaphore {
  /** Waits for a slot; rejects with AbortedError when `signal` fires. */
  acquire(signal?: AbortSignal): Promise<Lease>;
  /** Changes the slot count for later acquires of this process. */
  setLimit(limit: number): void;
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Creates a semaphore; see the invariants above. */
export function createSemaphore(options: SemaphoreOptions): Semaphore {
  const { redis, job, name, leaseMs } = options;
  if (!NAME_PATTERN.test(name)) {
    throw new RangeError(`invalid semaphore name ${JSON.stringify(name)}`);
  }
  if (!Number.isInteger(leaseMs) || leaseMs < 300) {
    throw new RangeError(`invalid semaphore lease ${leaseMs} ms: >= 300`);
  }
  checkLimit(options.limit);

  const key = options.keys.semaphore(job, name);
  const operation = `semaphore ${jobId(job)} ${name}`;
  const logger = options.logger.child({
    area: "semaphore",
    job: jobId(job),
    semaphore: name,
  });
  const pollMs = options.pollMs ?? 100;
  // Wakes this process's waiters when one of its leases is released.
  const released = new EventTarget();
  let limit = options.limit;

  const context = { redis, key, leaseMs, logger, operation, released };

  return {
    async acquire(signal) {
      const id = randomBytes(12).toString("hex");
      for (;;) {
        const sentMs = performance.now();
        const tryAcquire = () =>
          runLuaScript(redis, ACQUIRE_SCRIPT, [key], [id, limit, leaseMs]);
        const reply = parseAcquireReply(
          await retryWhileRedisUnavailable(tryAcquire, {
            redis,
            logger,
            signal,
            operation,
          }),
        );
        if (reply.granted) {
          return holdLease(context, id, sentMs + reply.leaseLeftMs);
        }

        const jitteredMs = pollMs * (0.5 + Math.random() / 2);
        const waitMs = Math.min(reply.waitMs, jitteredMs);
        await waitForSlot(released, waitMs, signal, operation);
      }
    },

    setLimit(next) {
      checkLimit(next);
      limit = next;
    },
  };
}

interface LeaseContext {
  redis: Redis;
  key: string;
  leaseMs: number;
  logger: Logger;
  operation: string;
  released: EventTarget;
}

/** Starts renewing a granted lease; `deadlineMs` is on the monotonic clock. */
function holdLease(
  context: LeaseContext,
  id: string,
  deadlineMs: number,
): Lease {
  const { redis, key, leaseMs, logger } = context;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;

  const lose = (reason: string) => {
    done = true;
    logger.warn({ event: "semaphore.lease_lost", lease: id, reason }, reason);
    const message = `${context.operation}: lease ${id} lost: ${reason}`;
    controller.abort(new VulnsubError("lock_lost", message));
  };

  const renew = async () => {
    const sentMs = performance.now();
    try {
      const reply = await runLuaScript(redis, RENEW_SCRIPT, [key], [
        id,
        leaseMs,
      ]);
      if (done) return;
      const renewed = parseRenewReply(reply);
      if (!renewed.held) return lose("lease expired before renewal");
      deadlineMs = sentMs + renewed.leaseLeftMs;
      schedule(leaseMs / 3);
    } catch (error) {
      if (done) return;
      if (performance.now() >= deadlineMs) {
        return lose(`renewal failed past expiry: ${String(error)}`);
      }
      schedule(Math.min(leaseMs / 10, 500));
    }
  };
  const schedule = (delayMs: number) => {
    timer = setTimeout(() => void renew(), delayMs);
    timer.unref?.();
  };
  schedule(leaseMs / 3);

  return {
    id,
    signal: controller.signal,
    async release() {
      if (timer) clearTimeout(timer);
      if (done) return;
      done = true;
      try {
        await redis.zrem(key, id);
      } catch (error) {
        logger.warn(
          {
            event: "semaphore.release_failed",
            lease: id,
            ...errorFields(error),
          },
          "cannot release lease; its slot frees when it expires",
        );
      }
      context.released.dispatchEvent(new Event("released"));
    },
  };
}

function waitForSlot(
  released: EventTarget,
  maxMs: number,
  signal: AbortSignal | undefined,
  operation: string,
): Promise<void> {
  const wake = new AbortController();
  const onRelease = () => wake.abort();
  released.addEventListener("released", onRelease, { once: true });
  const both = signal ? AbortSignal.any([signal, wake.signal]) : wake.signal;
  return sleep(maxMs, both, operation)
    .catch((error: unknown) => {
      if (signal?.aborted) throw error;
    })
    .finally(() => released.removeEventListener("released", onRelease));
}

function checkLimit(limit: number) {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`invalid semaphore limit ${limit}: expected >= 1`);
  }
}

const ACQUIRE_SCRIPT = loadLuaScript("semaphore-acquire");
const RENEW_SCRIPT = loadLuaScript("semaphore-renew");

/** Turns the reply of semaphore-acquire.lua into a typed result. */
function parseAcquireReply(reply: unknown) {
  const [code, value, nowMs] = Array.isArray(reply) ? reply : [];
  if ((code !== 0 && code !== 1) || typeof value !== "number") {
    throw unexpectedReplyError(ACQUIRE_SCRIPT, reply);
  }
  if (code === 0) return { granted: false as const, waitMs: value };
  return { granted: true as const, leaseLeftMs: value - Number(nowMs) };
}

/** Turns the reply of semaphore-renew.lua into a typed result. */
function parseRenewReply(reply: unknown) {
  const [code, expiryMs, nowMs] = Array.isArray(reply) ? reply : [];
  if (code !== 0 && code !== 1) throw unexpectedReplyError(RENEW_SCRIPT, reply);
  return { held: code === 1, leaseLeftMs: Number(expiryMs) - Number(nowMs) };
}
