import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  test,
} from "bun:test";
import { join } from "node:path";
import {
  AbortedError,
  createRateLimiter,
  createRedisClient,
  createRedisKeys,
  isRedisUnavailableError,
  parseJobRef,
} from "../src/index.ts";
import {
  type OwnRedis,
  createMemoryLogger,
  createTempDir,
  eventsOf,
  killFixtures,
  maxInWindow,
  readRecords,
  removeTempDirs,
  spawnFixture,
  startOwnRedis,
  uniquePrefix,
  waitFor,
} from "./helpers.ts";

const job = parseJobRef("tenable", "default");
let own: OwnRedis;

beforeAll(async () => {
  own = await startOwnRedis();
});
afterEach(async () => {
  await killFixtures();
  await own.start();
});
afterAll(async () => {
  await own.kill();
  removeTempDirs();
});

interface PermitRecord {
  kind: "ready" | "permit";
  child: string;
  grantedAtUs: number;
  wallMs: number;
}

describe("redis outage", () => {
  test("no permit while down, resumes after restart", async () => {
    const keys = createRedisKeys(uniquePrefix("outage"));
    const dir = createTempDir("outage");
    const requests = 10;
    const windowMs = 1000;
    const marginMs = 50;
    const files = Array.from({ length: 4 }, (_, index) =>
      join(dir, `c${index}.jsonl`),
    );
    const children = files.map((outFile, index) =>
      spawnFixture("limiter-child", {
        name: `c${index}`,
        redisUrl: own.url,
        prefix: keys.prefix,
        requests,
        windowMs,
        marginMs,
        runUntilMs: Date.now() + 30_000,
        outFile,
      }),
    );
    const permitsOf = (file: string) =>
      readRecords<PermitRecord>(file).filter((r) => r.kind === "permit");
    const all = () => files.flatMap(permitsOf);
    const everyChildGranted = () =>
      files.every((file) => permitsOf(file).length > 0);
    await waitFor(
      () => everyChildGranted() && all().length >= 15,
      30_000,
      "permits before the outage",
    );

    await own.kill();
    const downAtMs = Date.now();
    await Bun.sleep(2500);
    const countWhileDown = all().length;
    await Bun.sleep(500);
    await own.start();
    const upAtMs = Date.now();
    const resumed = (file: string) =>
      permitsOf(file).some((p) => p.grantedAtUs / 1000 > upAtMs);
    await waitFor(
      () => files.every(resumed),
      15_000,
      "every child to get a permit after the restart",
    );
    for (const child of children) child.kill("SIGKILL");
    const permits = all();
    // Redis TIME and Date.now() read the same host clock.
    const grantedWhileDown = permits.filter(
      (p) => p.grantedAtUs / 1000 >= downAtMs && p.grantedAtUs / 1000 <= upAtMs,
    );
    // A permit granted just before the kill may be recorded a moment later.
    const recordedWhileDown = permits.filter(
      (p) => p.wallMs > downAtMs + 200 && p.wallMs < upAtMs,
    );
    const timesUs = permits.map((p) => p.grantedAtUs);
    const withMarginUs = (windowMs + marginMs) * 1000;

    expect(grantedWhileDown).toEqual([]);
    expect(recordedWhileDown).toEqual([]);
    expect(all().length).toBeGreaterThan(countWhileDown);
    expect(maxInWindow(timesUs, withMarginUs)).toBeLessThanOrEqual(requests);
  }, 60_000);

  test("acquire waits, logs once, and resumes", async () => {
    const keys = createRedisKeys(uniquePrefix("outage-log"));
    const { logger, lines } = createMemoryLogger();
    const redis = createRedisClient({ url: own.url, logger });
    const limiter = createRateLimiter({
      redis, keys, job, requests: 100, windowMs: 1000, logger,
    });
    await limiter.acquire();
    await own.kill();
    await waitFor(() => !redis.isReady(), 5000, "the client to notice");

    const stalled = limiter.acquire(AbortSignal.timeout(1500));
    await expect(stalled).rejects.toBeInstanceOf(AbortedError);
    const resumed = limiter.acquire(AbortSignal.timeout(20_000));
    await Bun.sleep(1000);
    await own.start();
    const permit = await resumed;
    await waitFor(() => redis.isReady(), 5000, "the client to reconnect");
    redis.disconnect();

    expect(permit.waitedMs).toBeGreaterThan(900);
    expect(eventsOf(lines, "redis.unavailable")).toHaveLength(1);
    expect(eventsOf(lines, "redis.disconnected")).toHaveLength(1);
    expect(eventsOf(lines, "redis.reconnected")).toHaveLength(1);
  }, 30_000);

  test("commands fail fast while redis is down", async () => {
    const { logger } = createMemoryLogger();
    const redis = createRedisClient({ url: own.url, logger });
    await waitFor(() => redis.isReady(), 5000, "the client to connect");
    await own.kill();
    await waitFor(() => !redis.isReady(), 5000, "the client to notice");
    const error = await redis.get("any").catch((caught: unknown) => caught);
    redis.disconnect();

    expect(error).toBeInstanceOf(Error);
    expect(isRedisUnavailableError(error)).toBe(true);
  });
});

describe("isRedisUnavailableError", () => {
  const replyError = (message: string) =>
    Object.assign(new Error(message), { name: "ReplyError" });

  test.each([
    ["connection closed", new Error("Connection is closed."), true],
    ["offline queue off", new Error("Stream isn't writeable"), true],
    ["command timeout", new Error("Command timed out"), true],
    ["refused", Object.assign(new Error("x"), { code: "ECONNREFUSED" }), true],
    ["loading", replyError("LOADING Redis is loading the dataset"), true],
    ["wrong type", replyError("WRONGTYPE Operation against a key"), false],
    ["script error", replyError("ERR user_script:1: bad"), false],
    ["not an error", "Connection is closed.", false],
  ])("%s", (_name, error, expected) => {
    expect(isRedisUnavailableError(error)).toBe(expected);
  });
});
