import { Redis } from "ioredis";

/**
 * Deletes every key under `prefix` (the REDIS_KEY_PREFIX a bench gave its
 * pollers) and returns how many were deleted. Never touches other keys.
 */
export async function deleteRedisKeys(
  redisUrl: string,
  prefix: string,
): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(
        cursor,
        "MATCH",
        `${prefix}:*`,
        "COUNT",
        500,
      );
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}
