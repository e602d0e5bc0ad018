import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  test,
} from "bun:test";
import { join } from "node:path";
import { Redis } from "ioredis";
import {
  AbortedError,
  createLogger,
  createRateLimiter,
  createRedisKeys,
  parseJobRef,
} from "../src/index.ts";
import {
  REDIS_URL,
  createMemoryLogger,
  createTempDir,
  deleteKeys,
  eventsOf,
  killFixtures,
  maxInWindow,
  readRecords,
  removeTempDirs,
  spawnFixture,
  startFixtures,
  uniquePrefix,
} from "./helpers.ts";

const job = parseJobRef("tenable", "default");
const logger = createLogger({ service: "test", level: "silent" });
let redis: Redis;
const prefixes: string[] = [];

function newKeys(name: string) {
  const prefix = uniquePrefix(name);
  prefixes.push(prefix);
  return createRedisKeys(prefix);
}

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterEach(killFixtures);
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis, prefix);
  redis.disconnect();
  removeTempDirs();
});

interface ChildRecord {
  kind: "ready" | "permit";
  child: string;
  grantedAtUs: number;
}

describe("rate limiter", () => {
  test("eight processes never exceed the limit", async () => {
    const keys = newKeys("hammer");
    const dir = createTempDir("hammer");
    const requests = 10;
    const windowMs = 2000;
    const marginMs = 50;
    const runMs = 8000;
    const started = Array.from({ length: 8 }, (_, index) => {
      const outFile = join(dir, `c${index}.jsonl`);
      const child = spawnFixture("limiter-child", {
        name: `c${index}`,
        redisUrl: REDIS_URL,
        prefix: keys.prefix,
        requests,
        windowMs,
        marginMs,
        handshake: true,
        outFile,
      });
      return { child, outFile };
    });
    await startFixtures(started, runMs);
    const codes = await Promise.all(started.map(({ child }) => child.exited));
    const permits = started
      .flatMap(({ outFile }) => readRecords<ChildRecord>(outFile))
      .filter((record) => record.kind === "permit");
    const timesUs = permits.map((permit) => permit.grantedAtUs);
    const firstUs = Math.min(...timesUs);
    const inRun = timesUs.filter((time) => time < firstUs + runMs * 1000);
    const allowed = requests * (runMs / windowMs);

    const withMarginUs = (windowMs + marginMs) * 1000;
    const children = new Set(permits.map((permit) => permit.child));

    expect(codes.every((code) => code === 0)).toBe(true);
    expect(maxInWindow(timesUs, withMarginUs)).toBeLessThanOrEqual(requests);
    expect(maxInWindow(timesUs, windowMs * 1000)).toBeLessThanOrEqual(requests);
    expect(inRun.length / allowed).toBeGreaterThanOrEqual(0.9);
    expect(children.size).toBeGreaterThan(1);
  }, 30_000);

  test("advertised limit applies with the configured one", async () => {
    const keys = newKeys("advertised");
    const limiter = createRateLimiter({
      redis, keys, job, requests: 10, windowMs: 1000, marginMs: 0, logger,
    });
    limiter.setAdvertisedLimit({ requests: 3, windowMs: 400 });
    const timesUs: number[] = [];
    for (let i = 0; i < 9; i++) {
      timesUs.push((await limiter.acquire()).grantedAtUs);
    }

    expect(maxInWindow(timesUs, 400_000)).toBeLessThanOrEqual(3);
    expect(maxInWindow(timesUs, 1_000_000)).toBeLessThanOrEqual(10);
  }, 10_000);

  test("advertised limit is shared through redis", async () => {
    const keys = newKeys("advertised-shared");
    const first = createRateLimiter({
      redis, keys, job, requests: 10, windowMs: 60_000, logger,
    });
    const second = createRateLimiter({
      redis, keys, job, requests: 10, windowMs: 60_000, logger,
    });
    first.setAdvertisedLimit({ requests: 2, windowMs: 60_000 });
    await Bun.sleep(100);
    await second.acquire();
    await second.acquire();
    const third = second.acquire(AbortSignal.timeout(300));

    await expect(third).rejects.toBeInstanceOf(AbortedError);
  });

  test("invalid advertised limit is ignored", async () => {
    const keys = newKeys("advertised-invalid");
    const memory = createMemoryLogger();
    const limiter = createRateLimiter({
      redis, keys, job, requests: 2, windowMs: 60_000,
      logger: memory.logger,
    });
    limiter.setAdvertisedLimit({ requests: 0, windowMs: 3_600_000 });
    await limiter.acquire();
    await limiter.acquire();
    const invalid = eventsOf(memory.lines, "ratelimit.advertised_invalid");

    expect(invalid).toHaveLength(1);
    expect(await redis.exists(keys.advertisedLimit(job))).toBe(0);
  });

  test("acquire stops when its signal fires", async () => {
    const keys = newKeys("abort");
    const limiter = createRateLimiter({
      redis, keys, job, requests: 1, windowMs: 60_000, logger,
    });
    await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    setTimeout(() => controller.abort(), 100);

    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
  });

  test("a pause blocks permits without spending them", async () => {
    const keys = newKeys("paused");
    const limiter = createRateLimiter({
      redis, keys, job, requests: 5, windowMs: 60_000, logger,
    });
    await redis.set(keys.pause(job), String(Date.now() + 60_000), "PX", 60_000);
    const blocked = limiter.acquire(AbortSignal.timeout(300));

    await expect(blocked).rejects.toBeInstanceOf(AbortedError);
    expect(await redis.zcard(keys.rateLimit(job))).toBe(0);
  });

  test("lost redis data blocks one window", async () => {
    const keys = newKeys("data-loss");
    const memory = createMemoryLogger();
    const limiter = createRateLimiter({
      redis, keys, job, requests: 3, windowMs: 600, marginMs: 0,
      logger: memory.logger,
    });
    await limiter.acquire();
    // Simulates a restart without persistence.
    await deleteKeys(redis, keys.prefix);
    const before = Date.now();
    const permit = await limiter.acquire();

    expect(permit.grantedAtUs / 1000 - before).toBeGreaterThanOrEqual(550);
    expect(eventsOf(memory.lines, "ratelimit.data_lost")).toHaveLength(1);
  });

  test("invalid limits are rejected", () => {
    const keys = newKeys("invalid");
    const make = (requests: number, windowMs: number) => () =>
      createRateLimiter({ redis, keys, job, requests, windowMs, logger });

    expect(make(0, 1000)).toThrow(RangeError);
    expect(make(1.5, 1000)).toThrow(RangeError);
    expect(make(10, 0)).toThrow(RangeError);
  });
});
