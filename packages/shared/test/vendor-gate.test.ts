import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import {
  AbortedError,
  createPauseGate,
  createRateLimiter,
  createRedisKeys,
  createSemaphore,
  createVendorGate,
  parseJobRef,
} from "../src/index.ts";
import {
  REDIS_URL,
  createMemoryLogger,
  deleteKeys,
  uniquePrefix,
} from "./helpers.ts";

const job = parseJobRef("qualys", "default");
let redis: Redis;
const prefixes: string[] = [];

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis, prefix);
  redis.disconnect();
});

function createParts(name: string, requests: number, windowMs: number) {
  const prefix = uniquePrefix(name);
  prefixes.push(prefix);
  const keys = createRedisKeys(prefix);
  const { logger } = createMemoryLogger();
  const rateLimiter = createRateLimiter({
    redis, keys, job, requests, windowMs, marginMs: 0, logger,
  });
  const pauseGate = createPauseGate({ redis, keys, job, logger });
  const semaphore = createSemaphore({
    redis, keys, job, name: "requests", limit: 1, leaseMs: 3000, logger,
  });
  const gate = createVendorGate({ rateLimiter, pauseGate, semaphore, logger });
  return { keys, rateLimiter, pauseGate, semaphore, gate };
}

describe("vendor gate", () => {
  test("waits for a pause before granting", async () => {
    const { gate, pauseGate } = createParts("gate-pause", 10, 1000);
    await pauseGate.pauseFor(300, "429");
    const pass = await gate.acquire();
    await pass.release();

    expect(pass.waitedMs).toBeGreaterThanOrEqual(250);
    expect(pass.lease).not.toBeNull();
  });

  test("cancelled permit wait frees the lease", async () => {
    const { gate, rateLimiter, semaphore } = createParts("gate-cancel", 1, 60_000);
    await rateLimiter.acquire();
    const blocked = gate.acquire(AbortSignal.timeout(200));

    await expect(blocked).rejects.toBeInstanceOf(AbortedError);
    const lease = await semaphore.acquire(AbortSignal.timeout(1000));
    await lease.release();
  });

  test("pause set during the slot wait spends no permit", async () => {
    const { gate, pauseGate, keys } = createParts("gate-order", 10, 60_000);
    const first = await gate.acquire();
    const second = gate.acquire(AbortSignal.timeout(5000));
    await pauseGate.pauseFor(600, "429");
    await first.release();
    await Bun.sleep(300);
    const permitsDuringPause = await redis.zcard(keys.rateLimit(job));
    const pass = await second;
    await pass.release();

    expect(permitsDuringPause).toBe(1);
    expect(await redis.zcard(keys.rateLimit(job))).toBe(2);
  });
});
