import type { Redis } from "ioredis";
import { jobId, type JobRef } from "./job.ts";
import {
  loadLuaScript,
  runLuaScript,
  unexpectedReplyError,
} from "./redis-client.ts";
import type { RedisKeys } from "./redis-keys.ts";

/**
 * Issues the next fencing token of a job (Redis INCR, one round trip).
 * Tokens only ever grow while Redis keeps its data. Pass `floor` (the
 * newest token the flusher stored) to keep them growing after Redis lost
 * its data: the new token is then above the floor.
 *
 * Throws on Redis errors; wrap the call in retryWhileRedisUnavailable to
 * wait for Redis instead.
 *
 * NOTE: the token travels through a JavaScript number on its way out of
 * ioredis, so it is exact up to 2^53 (far beyond one token per takeover).
 */
export async function nextFencingToken(
  redis: Redis,
  keys: RedisKeys,
  job: JobRef,
  floor = 0n,
): Promise<bigint> {
  if (floor < 0n) {
    throw new RangeError(`invalid fencing floor ${floor} for ${jobId(job)}`);
  }
  const reply = await runLuaScript(
    redis,
    FENCE_SCRIPT,
    [keys.fence(job)],
    [floor.toString()],
  );
  if (typeof reply !== "number" || !Number.isSafeInteger(reply) || reply < 1) {
    throw unexpectedReplyError(FENCE_SCRIPT, reply);
  }
  return BigInt(reply);
}

const FENCE_SCRIPT = loadLuaScript("fence-next");
