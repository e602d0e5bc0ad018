import type { JobRef } from "./job.ts";

/**
 * Every Redis key vulnsub uses, built in one place with whole words. Keys
 * share the prefix (default "vulnsub") so one Redis can serve several
 * deployments or test runs side by side.
 *
 * Layout, per job (vendor + source):
 * - `<prefix>:ratelimit:<vendor>:<source>`: sorted set of permit ids scored
 *   by grant time in microseconds (Redis clock); the rolling-window limiter.
 * - `<prefix>:ratelimit:advertised:<vendor>:<source>`: hash with fields
 *   `requests` and `windowMs`, the limit the vendor last advertised in its
 *   response headers, shared by every poller of the account.
 * - `<prefix>:pause:<vendor>:<source>`: string, Redis time in milliseconds
 *   until which no request may start (vendor back-pressure).
 * - `<prefix>:semaphore:<vendor>:<source>:<name>`: sorted set of lease ids
 *   scored by lease expiry in milliseconds (Redis clock).
 * - `<prefix>:fence:<vendor>:<source>`: integer, the newest fencing token.
 *
 * Per prefix:
 * - `<prefix>:epoch`: string, a random id written once and never expired.
 *   A client that saw it and later finds it missing or changed knows that
 *   Redis lost its data (restart without persistence, flush).
 *
 * "advertised" is not a vendor name, so the advertised-limit key never
 * collides with a rate-limit key.
 */
export function createRedisKeys(prefix = "vulnsub") {
  const jobPart = (job: JobRef) => `${job.vendor}:${job.source}`;
  return {
    prefix,
    rateLimit: (job: JobRef) => `${prefix}:ratelimit:${jobPart(job)}`,
    advertisedLimit: (job: JobRef) =>
      `${prefix}:ratelimit:advertised:${jobPart(job)}`,
    pause: (job: JobRef) => `${prefix}:pause:${jobPart(job)}`,
    semaphore: (job: JobRef, name: string) =>
      `${prefix}:semaphore:${jobPart(job)}:${name}`,
    fence: (job: JobRef) => `${prefix}:fence:${jobPart(job)}`,
    epoch: () => `${prefix}:epoch`,
  };
}

export type RedisKeys = ReturnType<typeof createRedisKeys>;
