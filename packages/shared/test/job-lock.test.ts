import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import {
  AbortedError,
  createJobLock,
  createRedisKeys,
  lockPath,
  nextFencingToken,
  parseJobRef,
  type JobRef,
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
  uniquePrefix,
  waitFor,
} from "./helpers.ts";

const job = parseJobRef("rapid7", "default");
// Small enough for quick takeovers, large enough for loaded test machines.
const staleMs = 3000;
// A standby retries every 1000 ms; see the takeover window in job-lock.ts.
const takeoverBoundMs = staleMs + 1000;
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

type LockRecord =
  | { kind: "started"; child: string; wallMs: number }
  | { kind: "acquired"; child: string; token: string; wallMs: number }
  | { kind: "send"; child: string; checkedAtMs: number }
  | { kind: "lost"; child: string; code?: string; wallMs: number };

function startLockChild(name: string, keys: ReturnType<typeof createRedisKeys>, stateDir: string, dir: string) {
  const outFile = join(dir, `${name}.jsonl`);
  const child = spawnFixture("lock-child", {
    name,
    redisUrl: REDIS_URL,
    prefix: keys.prefix,
    stateDir,
    staleMs,
    sendEveryMs: 50,
    runUntilMs: Date.now() + 30_000,
    outFile,
  });
  const records = () => readRecords<LockRecord>(outFile);
  const acquired = () => records().find((record) => record.kind === "acquired");
  return { child, records, acquired };
}

describe("job lock", () => {
  test("standby takes over after the holder is killed", async () => {
    const keys = newKeys("lock-kill");
    const dir = createTempDir("lock-kill");
    const holder = startLockChild("holder", keys, dir, dir);
    await waitFor(() => holder.acquired() !== undefined, 10_000, "holder lock");
    const standby = startLockChild("standby", keys, dir, dir);
    await waitFor(() => standby.records().length > 0, 10_000, "standby start");
    await Bun.sleep(1500);

    expect(standby.acquired()).toBeUndefined();
    holder.child.kill("SIGKILL");
    await holder.child.exited;
    const killedAtMs = Date.now();
    await waitFor(() => standby.acquired() !== undefined, 15_000, "takeover");
    const takeover = standby.acquired();
    const first = holder.acquired();
    if (takeover?.kind !== "acquired" || first?.kind !== "acquired") {
      throw new Error("missing acquired records");
    }

    expect(takeover.wallMs - killedAtMs).toBeLessThanOrEqual(takeoverBoundMs + 1000);
    expect(BigInt(takeover.token)).toBeGreaterThan(BigInt(first.token));
  }, 40_000);

  test("stopped holder sends nothing after a takeover", async () => {
    const keys = newKeys("lock-stop");
    const dir = createTempDir("lock-stop");
    const holder = startLockChild("holder", keys, dir, dir);
    await waitFor(
      () => holder.records().filter((record) => record.kind === "send").length >= 5,
      10_000,
      "holder sends",
    );
    const standby = startLockChild("standby", keys, dir, dir);
    await waitFor(() => standby.records().length > 0, 10_000, "standby start");

    holder.child.kill("SIGSTOP");
    const stoppedAtMs = Date.now();
    await waitFor(() => standby.acquired() !== undefined, 15_000, "takeover");
    await Bun.sleep(300);
    holder.child.kill("SIGCONT");
    await waitFor(
      () => holder.records().some((record) => record.kind === "lost"),
      10_000,
      "holder to notice the loss",
    );
    const late = holder
      .records()
      .filter((record) => record.kind === "send" && record.checkedAtMs > stoppedAtMs);
    const lost = holder.records().find((record) => record.kind === "lost");
    const first = holder.acquired();
    const takeover = standby.acquired();
    if (takeover?.kind !== "acquired" || first?.kind !== "acquired") {
      throw new Error("missing acquired records");
    }

    expect(late).toEqual([]);
    expect(lost?.kind).toBe("lost");
    expect(lost?.kind === "lost" ? lost.code : undefined).toBe("lock_lost");
    expect(BigInt(takeover.token)).toBeGreaterThan(BigInt(first.token));
  }, 40_000);

  test("fencing token grows across acquisitions", async () => {
    const keys = newKeys("lock-token");
    const dir = createTempDir("lock-token");
    const { logger } = createMemoryLogger();
    const lock = createJobLock({ stateDir: dir, job, staleMs, redis, keys, logger });
    const tokens: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const handle = await lock.acquire();
      tokens.push(handle.fencingToken);
      await handle.release();
    }

    expect(tokens[1]).toBeGreaterThan(tokens[0] as bigint);
    expect(tokens[2]).toBeGreaterThan(tokens[1] as bigint);
  });

  test("fencing token stays above a floor", async () => {
    const keys = newKeys("fence-floor");
    const first = await nextFencingToken(redis, keys, job);
    const raised = await nextFencingToken(redis, keys, job, 41n);
    const next = await nextFencingToken(redis, keys, job);

    expect(first).toBe(1n);
    expect(raised).toBe(42n);
    expect(next).toBe(43n);
  });

  test("release aborts the signal and frees the lock", async () => {
    const keys = newKeys("lock-release");
    const dir = createTempDir("lock-release");
    const { logger, lines } = createMemoryLogger();
    const lock = createJobLock({ stateDir: dir, job, staleMs, redis, keys, logger });
    const handle = await lock.acquire();
    await handle.release();
    const again = await lock.acquire(AbortSignal.timeout(2000));
    await again.release();

    expect(handle.signal.aborted).toBe(true);
    expect(handle.signal.reason).toBeInstanceOf(AbortedError);
    expect(existsSync(`${lock.path}.lock`)).toBe(false);
    expect(eventsOf(lines, "lock.lost")).toEqual([]);
  });

  test("standby logs once and can be cancelled", async () => {
    const keys = newKeys("lock-standby");
    const dir = createTempDir("lock-standby");
    const { logger, lines } = createMemoryLogger();
    const lock = createJobLock({ stateDir: dir, job, staleMs, redis, keys, logger });
    const holder = await lock.acquire();
    const waiting = lock.acquire(AbortSignal.timeout(2500));

    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    await holder.release();
    expect(eventsOf(lines, "lock.standby")).toHaveLength(1);
  });

  test("removed lock directory is detected as lost", async () => {
    const keys = newKeys("lock-removed");
    const dir = createTempDir("lock-removed");
    const { logger, lines } = createMemoryLogger();
    const lock = createJobLock({ stateDir: dir, job, staleMs, redis, keys, logger });
    const handle = await lock.acquire();
    await Bun.$`rmdir ${lock.path}.lock`;
    await waitFor(() => handle.signal.aborted, 5000, "loss detection");
    await handle.release();

    expect((handle.signal.reason as { code?: string }).code).toBe("lock_lost");
    expect(eventsOf(lines, "lock.lost")).toHaveLength(1);
  });

  test.each([
    ["parent folder", "../state"],
    ["slash", "a/b"],
    ["dot dot", ".."],
    ["empty", ""],
    ["upper case", "Default"],
    ["too long", "x".repeat(65)],
    ["nul byte", "a\u0000b"],
  ])("hostile source rejected: %s", (_name, source) => {
    const { logger } = createMemoryLogger();
    const hostile = { vendor: "qualys", source } as JobRef;
    const create = () =>
      createJobLock({ stateDir: "/tmp", job: hostile, redis, keys: newKeys("h"), logger });

    expect(create).toThrow(expect.objectContaining({ code: "job_invalid" }));
    expect(() => lockPath("/tmp", hostile)).toThrow(
      expect.objectContaining({ code: "job_invalid" }),
    );
  });

  test("hostile vendor rejected", () => {
    const hostile = { vendor: "../qualys", source: "default" } as unknown as JobRef;

    expect(() => lockPath("/tmp", hostile)).toThrow(
      expect.objectContaining({ code: "job_invalid" }),
    );
  });

  test("lock path stays in the locks folder", () => {
    expect(lockPath("/srv/state/../state", job)).toBe("/srv/state/locks/rapid7.default");
  });
});
