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
  createPauseGate,
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
  readRecords,
  removeTempDirs,
  spawnFixture,
  startFixtures,
  uniquePrefix,
} from "./helpers.ts";

const job = parseJobRef("tenable", "default");
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

type ChildRecord =
  | { kind: "ready" }
  | { kind: "permit"; child: string; grantedAtUs: number }
  | { kind: "pause"; child: string; setByMs: number; untilMs: number };

describe("pause gate", () => {
  test("one process pauses all of them", async () => {
    const keys = newKeys("pause-all");
    const dir = createTempDir("pause-all");
    const pauseMs = 1500;
    const started = Array.from({ length: 4 }, (_, index) => {
      const outFile = join(dir, `c${index}.jsonl`);
      const child = spawnFixture("limiter-child", {
        name: `c${index}`,
        redisUrl: REDIS_URL,
        prefix: keys.prefix,
        requests: 40,
        windowMs: 1000,
        marginMs: 0,
        handshake: true,
        outFile,
        // Child 0 treats its 10th permit as an HTTP 429 and pauses the job.
        ...(index === 0 ? { pauseAfterPermits: 10, pauseMs } : {}),
      });
      return { child, outFile };
    });
    await startFixtures(started, 4000);
    await Promise.all(started.map(({ child }) => child.exited));
    const records = started.flatMap(({ outFile }) =>
      readRecords<ChildRecord>(outFile),
    );
    const pause = records.find((record) => record.kind === "pause");
    const permitsMs = records.flatMap((record) =>
      record.kind === "permit"
        ? [{ child: record.child, atMs: record.grantedAtUs / 1000 }]
        : [],
    );
    if (!pause || pause.kind !== "pause") throw new Error("no pause recorded");
    const during = permitsMs.filter(
      (permit) => permit.atMs >= pause.setByMs && permit.atMs < pause.untilMs,
    );
    const resumed = new Set(
      permitsMs
        .filter((permit) => permit.atMs >= pause.untilMs)
        .map((permit) => permit.child),
    );
    const before = permitsMs.filter((permit) => permit.atMs < pause.setByMs);

    expect(pause.untilMs - pause.setByMs).toBeGreaterThan(pauseMs - 200);
    expect(pause.untilMs - pause.setByMs).toBeLessThanOrEqual(pauseMs);
    expect(before.length).toBeGreaterThanOrEqual(10);
    expect(during).toEqual([]);
    expect(resumed.size).toBe(4);
  }, 30_000);

  test("pauseFor only ever extends the pause", async () => {
    const keys = newKeys("extend");
    const { logger, lines } = createMemoryLogger();
    const gate = createPauseGate({ redis, keys, job, logger });
    await gate.pauseFor(5000, "first");
    const longUntil = Number(await redis.get(keys.pause(job)));
    await gate.pauseFor(100, "shorter");

    expect(Number(await redis.get(keys.pause(job)))).toBe(longUntil);
    expect(eventsOf(lines, "vendor.paused")).toHaveLength(1);
    expect(eventsOf(lines, "vendor.pause_kept")).toHaveLength(1);
  });

  test("waitUntilClear waits for a pause set elsewhere", async () => {
    const keys = newKeys("wait");
    const { logger } = createMemoryLogger();
    const setter = createPauseGate({ redis, keys, job, logger });
    const waiter = createPauseGate({ redis, keys, job, logger });
    await setter.pauseFor(400, "429");
    const untilMs = Number(await redis.get(keys.pause(job)));
    const { waitedMs } = await waiter.waitUntilClear();
    const [seconds, micros] = await redis.time();
    const redisNowMs = Number(seconds) * 1000 + Number(micros) / 1000;

    expect(waitedMs).toBeGreaterThanOrEqual(300);
    expect(redisNowMs).toBeGreaterThanOrEqual(untilMs);
  });

  test("waitUntilClear stops when its signal fires", async () => {
    const keys = newKeys("wait-abort");
    const { logger } = createMemoryLogger();
    const gate = createPauseGate({ redis, keys, job, logger });
    await gate.pauseFor(60_000, "429");

    const waiting = gate.waitUntilClear(AbortSignal.timeout(100));

    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
  });

  test("invalid pause lengths are rejected", async () => {
    const keys = newKeys("invalid");
    const { logger } = createMemoryLogger();
    const gate = createPauseGate({ redis, keys, job, logger });

    const negative = gate.pauseFor(-1, "negative");
    const notANumber = gate.pauseFor(Number.NaN, "nan");

    await expect(negative).rejects.toBeInstanceOf(RangeError);
    await expect(notANumber).rejects.toBeInstanceOf(RangeError);
  });
});
