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
  createRedisKeys,
  createSemaphore,
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
  waitFor,
} from "./helpers.ts";

const job = parseJobRef("qualys", "default");
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

interface HeldRecord {
  kind: "ready" | "held";
  child: string;
  acquiredMs: number;
  releasedMs: number;
  lost: boolean;
}

/** Largest number of [acquiredMs, releasedMs] intervals open at once. */
function maxOverlap(intervals: { acquiredMs: number; releasedMs: number }[]) {
  const edges = intervals.flatMap((interval) => [
    { atMs: interval.acquiredMs, delta: 1 },
    { atMs: interval.releasedMs, delta: -1 },
  ]);
  // At equal times a release comes first: the interval is closed there.
  edges.sort((a, b) => a.atMs - b.atMs || a.delta - b.delta);
  let open = 0;
  let max = 0;
  for (const edge of edges) {
    open += edge.delta;
    max = Math.max(max, open);
  }
  return max;
}

describe("semaphore", () => {
  test("limit holds under contention", async () => {
    const keys = newKeys("contention");
    const dir = createTempDir("semaphore");
    const started = Array.from({ length: 6 }, (_, index) => {
      const outFile = join(dir, `c${index}.jsonl`);
      const child = spawnFixture("semaphore-child", {
        name: `c${index}`,
        mode: "cycle",
        redisUrl: REDIS_URL,
        prefix: keys.prefix,
        limit: 2,
        leaseMs: 1500,
        holdMs: 60,
        outFile,
      });
      return { child, outFile };
    });
    await startFixtures(started, 4000);
    const codes = await Promise.all(started.map(({ child }) => child.exited));
    const leases = started
      .flatMap(({ outFile }) => readRecords<HeldRecord>(outFile))
      .filter((record) => record.kind === "held");

    expect(codes.every((code) => code === 0)).toBe(true);
    expect(leases.length).toBeGreaterThan(20);
    expect(maxOverlap(leases)).toBeLessThanOrEqual(2);
    expect(maxOverlap(leases)).toBe(2);
    expect(leases.filter((record) => record.lost)).toEqual([]);
  }, 30_000);

  test("slot of a killed holder comes back after its lease", async () => {
    const keys = newKeys("killed");
    const dir = createTempDir("semaphore-killed");
    const outFile = join(dir, "holder.jsonl");
    const leaseMs = 1500;
    const holder = spawnFixture("semaphore-child", {
      name: "holder",
      mode: "hold",
      redisUrl: REDIS_URL,
      prefix: keys.prefix,
      limit: 1,
      leaseMs,
      holdMs: 0,
      outFile,
    });
    const holding = () => readRecords(outFile).length > 0;
    await waitFor(holding, 10_000, "holder lease");
    const { logger } = createMemoryLogger();
    const semaphore = createSemaphore({
      redis, keys, job, name: "requests", limit: 1, leaseMs, logger,
    });

    // Held and renewed: no slot even after more than one lease length.
    await expect(
      semaphore.acquire(AbortSignal.timeout(leaseMs + 500)),
    ).rejects.toBeInstanceOf(AbortedError);
    holder.kill("SIGKILL");
    await holder.exited;
    const killedMs = performance.now();
    const lease = await semaphore.acquire(AbortSignal.timeout(leaseMs + 3000));
    const waitedMs = performance.now() - killedMs;
    await lease.release();

    expect(waitedMs).toBeLessThanOrEqual(leaseMs + 1000);
  }, 20_000);

  test("lease renews while held", async () => {
    const keys = newKeys("renew");
    const { logger } = createMemoryLogger();
    const semaphore = createSemaphore({
      redis, keys, job, name: "exports", limit: 1, leaseMs: 600, logger,
    });
    const lease = await semaphore.acquire();
    await Bun.sleep(1500);
    const score = await redis.zscore(keys.semaphore(job, "exports"), lease.id);
    await lease.release();

    expect(lease.signal.aborted).toBe(false);
    expect(score).not.toBeNull();
  });

  test("expired lease is reported lost", async () => {
    const keys = newKeys("lost");
    const { logger, lines } = createMemoryLogger();
    const semaphore = createSemaphore({
      redis, keys, job, name: "requests", limit: 1, leaseMs: 600, logger,
    });
    const lease = await semaphore.acquire();
    // Another party removes the lease, as an expiry during a stall would.
    await redis.zrem(keys.semaphore(job, "requests"), lease.id);
    await waitFor(() => lease.signal.aborted, 2000, "lease loss");
    await lease.release();

    expect(eventsOf(lines, "semaphore.lease_lost")).toHaveLength(1);
  });

  test("release wakes a waiter in the same process", async () => {
    const keys = newKeys("wake");
    const { logger } = createMemoryLogger();
    const semaphore = createSemaphore({
      redis, keys, job, name: "requests", limit: 1, leaseMs: 5000,
      pollMs: 10_000, logger,
    });
    const first = await semaphore.acquire();
    const second = semaphore.acquire(AbortSignal.timeout(3000));
    await Bun.sleep(50);
    await first.release();
    const lease = await second;
    await lease.release();

    expect(lease.id).not.toBe(first.id);
  });

  test("invalid options are rejected", () => {
    const keys = newKeys("invalid");
    const { logger } = createMemoryLogger();
    const make = (name: string, limit: number, leaseMs: number) => () =>
      createSemaphore({ redis, keys, job, name, limit, leaseMs, logger });

    expect(make("../x", 1, 1000)).toThrow(RangeError);
    expect(make("requests", 0, 1000)).toThrow(RangeError);
    expect(make("requests", 1, 10)).toThrow(RangeError);
  });
});
