import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createLogger, createRedisClient } from "@vulnsub/shared";
import {
  startQualysSimulator,
  startRapid7Simulator,
  startTenableSimulator,
  type FaultSettings,
  type ServedVersion,
} from "@vulnsub/simulators";
import { pageKeys, parsePageCursor } from "./helpers/fake-adapter.ts";
import { startChild, type ChildProcess } from "./helpers/child-process.ts";
import { fakeCredentials } from "./helpers/fake-profile.ts";
import { startFakeVendor, type FakeVendor } from "./helpers/fake-vendor.ts";
import { waitUntil } from "./helpers/wait-until.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const repoRoot = resolve(import.meta.dir, "../../..");
const flusherMain = join(repoRoot, "services/flusher/src/main.ts");
const pollerMain = join(repoRoot, "services/poller/src/main.ts");
const fakePollerMain = join(import.meta.dir, "helpers/fake-poller-main.ts");
const TEST_TIMEOUT_MS = 90_000;

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface World {
  dir: string;
  dataDir: string;
  stateDir: string;
  prefix: string;
  vendor: FakeVendor;
}

function createWorld(): World {
  const dir = mkdtempSync(join(tmpdir(), "vulnsub-poller-"));
  const prefix = `vulnsub-test-${randomBytes(6).toString("hex")}`;
  const vendor = startFakeVendor();
  cleanups.push(async () => {
    await vendor.stop();
    await deleteRedisKeys(prefix);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    dataDir: join(dir, "data"),
    stateDir: join(dir, "state"),
    prefix,
    vendor,
  };
}

async function startFlusher(world: World, listen = "127.0.0.1:0") {
  const child = startChild([flusherMain], {
    FLUSHER_LISTEN: listen,
    DATA_DIR: world.dataDir,
    METRICS_LISTEN: "off",
  });
  cleanups.push(() => child.stop());
  const serving = await child.waitForEvent("flusher.serving");
  return { child, address: String(serving.address) };
}

function startPoller(
  world: World,
  flusherAddress: string,
  env: Record<string, string> = {},
): ChildProcess {
  const child = startChild([fakePollerMain], {
    VENDOR: "tenable",
    FLUSHER_ADDRESS: flusherAddress,
    TENABLE_BASE_URL: world.vendor.url,
    TENABLE_ACCESS_KEY: fakeCredentials.accessKey,
    TENABLE_SECRET_KEY: fakeCredentials.secretKey,
    STATE_DIR: world.stateDir,
    REDIS_URL: REDIS_URL,
    REDIS_KEY_PREFIX: world.prefix,
    RATE_LIMIT_RPM: "1000",
    RATE_LIMIT_WINDOW_MS: "1000",
    LOCK_STALE_MS: "2000",
    MAX_BATCH_RECORDS: "2",
    METRICS_LISTEN: "127.0.0.1:0",
    FAKE_PAGES: "3",
    ...env,
  });
  cleanups.push(() => child.stop());
  return child;
}

/** Log lines as "findingKey|version", in file order. */
function readLog(world: World): string[] {
  const path = join(world.dataDir, "vulnerabilities.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const record = JSON.parse(line) as {
        findingKey: string;
        version: string;
      };
      return `${record.findingKey}|${record.version}`;
    });
}

function expectedKeys(pages: number): string[] {
  const keys: string[] = [];
  for (let page = 1; page <= pages; page++) {
    for (const key of pageKeys(page)) keys.push(`${key}|v1`);
  }
  return keys;
}

function lockDirectory(world: World): string {
  return join(world.stateDir, "locks", "tenable.default.lock");
}

async function deleteRedisKeys(prefix: string) {
  const redis = createRedisClient({
    url: REDIS_URL,
    logger: createLogger({ service: "test", level: "silent" }),
  });
  await waitUntil("redis ready", () => redis.isReady(), 5_000);
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
}

describe("poller process", () => {
  test("--help lists every flag", async () => {
    const child = startChild([pollerMain, "--help"], {});

    const code = await child.exited;

    expect(code).toBe(0);
    const help = child.output();
    for (const name of [
      "--vendor  VENDOR",
      "--source  SOURCE",
      "--flusher  FLUSHER_ADDRESS",
      "--state-dir  STATE_DIR",
      "--redis-url  REDIS_URL",
      "REDIS_HOST",
      "REDIS_PORT",
      "REDIS_KEY_PREFIX",
      "RATE_LIMIT_RPM",
      "RATE_LIMIT_WINDOW_MS",
      "QUALYS_RATE_LIMIT_RPM",
      "TENABLE_BASE_URL",
      "RAPID7_API_KEY or RAPID7_API_KEY_FILE",
      "QUALYS_PASSWORD or QUALYS_PASSWORD_FILE",
      "TENABLE_SECRET_KEY or TENABLE_SECRET_KEY_FILE",
      "POLL_INTERVAL_MS",
      "LOOKBACK_MS",
      "BACKFILL_START",
      "MAX_UNACKED_BATCHES",
      "MAX_BATCH_RECORDS",
      "LOCK_STALE_MS",
      "METRICS_LISTEN",
      "--once",
      "TENABLE_NUM_ASSETS",
      "RAPID7_PAGE_SIZE",
      "QUALYS_API_VERSION",
    ]) {
      expect(help).toContain(name);
    }
  });

  test("config errors list every bad field", async () => {
    const child = startChild(
      [
        pollerMain,
        "--vendor",
        "qualys",
        "--poll-interval-ms",
        "soon",
        "--max-unacked-batches",
        "0",
        "--flusher",
        "nowhere",
        "--backfill-start",
        "yesterday",
      ],
      { QUALYS_USERNAME: "alice" },
    );

    const code = await child.exited;

    expect(code).toBe(2);
    const output = child.output();
    expect(output).toContain("pollIntervalMs from --poll-interval-ms");
    expect(output).toContain("maxUnackedBatches from --max-unacked-batches");
    expect(output).toContain("flusherAddress from --flusher");
    expect(output).toContain("backfillStart from --backfill-start");
    expect(output).toContain(
      "QUALYS_PASSWORD or QUALYS_PASSWORD_FILE): missing",
    );
    expect(output).not.toContain(
      "QUALYS_USERNAME or QUALYS_USERNAME_FILE): missing",
    );
  });

  test(
    "once run delivers every record once",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      const poller = startPoller(world, flusher.address, {
        FAKE_PAGES: "4",
        ONCE: "true",
      });

      const code = await poller.exited;

      expect(code).toBe(0);
      expect(readLog(world)).toEqual(expectedKeys(4));
      const completed = poller.events("cycle.completed");
      expect(completed.length).toBe(1);
      expect(completed[0]?.records).toBe(20);
      expect(completed[0]?.written).toBe(20);
      expect(poller.events("page.fetched").length).toBe(4);
      expect(poller.events("poller.started").length).toBe(1);
      expect(poller.events("lock.acquired").length).toBe(1);
      expect(poller.events("poller.stopped").length).toBe(1);
      expect(existsSync(lockDirectory(world))).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "secrets never appear in output",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      world.vendor.setPageDelayMs(0);
      const poller = startPoller(world, flusher.address, {
        ONCE: "true",
        LOG_LEVEL: "debug",
      });

      await poller.exited;

      expect(world.vendor.requests[0]?.auth).toContain(
        fakeCredentials.secretKey,
      );
      expect(poller.output()).not.toContain(fakeCredentials.secretKey);
      expect(poller.output()).not.toContain(fakeCredentials.accessKey);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "flusher SIGKILL mid-cycle loses nothing",
    async () => {
      const world = createWorld();
      const first = await startFlusher(world);
      world.vendor.setPageDelayMs(100);
      const poller = startPoller(world, first.address, {
        FAKE_PAGES: "12",
        ONCE: "true",
      });

      await poller.waitForEvent("batch.acked", (line) => line.seq === 4);
      first.child.signal("SIGKILL");
      await first.child.exited;
      await startFlusher(world, first.address);
      const code = await poller.exited;

      expect(code).toBe(0);
      expect(readLog(world)).toEqual(expectedKeys(12));
      expect(poller.events("flusher.unavailable").length).toBeGreaterThan(0);
      expect(poller.events("cycle.completed").length).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "poller SIGKILL resumes from durable cursor",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      world.vendor.setPageDelayMs(100);
      const first = startPoller(world, flusher.address, {
        FAKE_PAGES: "10",
        ONCE: "true",
      });

      const acked = await first.waitForEvent(
        "batch.acked",
        (line) =>
          typeof line.cursor === "string" &&
          line.seq !== undefined &&
          parsePageCursor(line.cursor) >= 3,
      );
      first.signal("SIGKILL");
      await first.exited;
      const requestsBefore = world.vendor.requests.length;
      const second = startPoller(world, flusher.address, {
        FAKE_PAGES: "10",
        ONCE: "true",
      });
      const code = await second.exited;

      expect(code).toBe(0);
      const connected = second.events("flusher.connected")[0];
      const resumedFrom = parsePageCursor(String(connected?.cursor));
      expect(resumedFrom).toBeGreaterThanOrEqual(
        parsePageCursor(String(acked.cursor)),
      );
      const pagesAfter = world.vendor
        .pagesRequested()
        .slice(
          world.vendor.pagesRequested().length -
            (world.vendor.requests.length - requestsBefore),
        );
      expect(pagesAfter[0]).toBe(resumedFrom + 1);
      expect(second.events("lock.taken_over").length).toBe(1);
      expect(readLog(world)).toEqual(expectedKeys(10));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "SIGTERM mid-cycle finishes the page and exits 0",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      world.vendor.setPageDelayMs(150);
      const poller = startPoller(world, flusher.address, { FAKE_PAGES: "30" });

      await poller.waitForEvent("page.fetched", (line) => line.page === 2);
      poller.signal("SIGTERM");
      const code = await poller.exited;

      expect(code).toBe(0);
      expect(poller.events("poller.stopped").length).toBe(1);
      expect(poller.events("lock.released").length).toBe(1);
      expect(existsSync(lockDirectory(world))).toBe(false);
      const log = readLog(world);
      const lastCursor = poller.events("batch.acked").at(-1)?.cursor;
      const pages = parsePageCursor(String(lastCursor));
      expect(log).toEqual(expectedKeys(pages));
      expect(pages).toBeLessThan(30);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "standby takes over after SIGKILL",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      world.vendor.setPageDelayMs(200);
      const first = startPoller(world, flusher.address, {
        FAKE_PAGES: "8",
        ONCE: "true",
      });
      await first.waitForEvent("lock.acquired");
      const second = startPoller(world, flusher.address, {
        FAKE_PAGES: "8",
        ONCE: "true",
      });

      await second.waitForEvent("lock.standby");
      await first.waitForEvent("page.fetched");
      first.signal("SIGKILL");
      const code = await second.exited;

      expect(code).toBe(0);
      const firstToken = BigInt(
        String(first.events("lock.acquired")[0]?.fencingToken),
      );
      const secondToken = BigInt(
        String(second.events("lock.acquired")[0]?.fencingToken),
      );
      expect(secondToken).toBeGreaterThan(firstToken);
      expect(readLog(world)).toEqual(expectedKeys(8));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "removed lock directory stops sending",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      world.vendor.setPageDelayMs(100);
      const poller = startPoller(world, flusher.address, {
        FAKE_PAGES: "15",
        ONCE: "true",
      });

      await poller.waitForEvent("page.fetched", (line) => line.page === 2);
      rmSync(lockDirectory(world), { recursive: true, force: true });
      await poller.waitForEvent("lock.lost");
      const code = await poller.exited;

      expect(code).toBe(0);
      const tokens = poller
        .events("lock.acquired")
        .map((line) => line.fencingToken);
      expect(tokens.length).toBe(2);
      expect(readLog(world)).toEqual(expectedKeys(15));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "metrics and healthz after a cycle",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      const poller = startPoller(world, flusher.address, {
        POLL_INTERVAL_MS: "600000",
      });

      await poller.waitForEvent("cycle.completed");
      const started = poller.events("poller.started")[0];
      const base = `http://${String(started?.metricsAddress)}`;
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const health = await fetch(`${base}/healthz`);
      const report = (await health.json()) as {
        healthy: boolean;
        reason: string;
      };
      poller.signal("SIGTERM");
      await poller.exited;

      expect(metrics).toContain(
        'vulnsub_poller_pages_fetched_total{vendor="tenable",source="default"} 3',
      );
      expect(metrics).toContain(
        'vulnsub_poller_lock_held{job="tenable:default"} 1',
      );
      expect(metrics).toContain(
        'vulnsub_poller_cycle_findings{job="tenable:default"} 15',
      );
      expect(metrics).toContain("vulnsub_poller_redis_up 1");
      expect(metrics).toContain(
        'vulnsub_poller_vendor_requests_total{vendor="tenable",source="default",operation="page",status="200"} 3',
      );
      expect(health.status).toBe(200);
      expect(report.healthy).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "rate limit holds across the run",
    async () => {
      const world = createWorld();
      const flusher = await startFlusher(world);
      const poller = startPoller(world, flusher.address, {
        FAKE_PAGES: "8",
        ONCE: "true",
        RATE_LIMIT_RPM: "3",
        RATE_LIMIT_WINDOW_MS: "1000",
      });

      const code = await poller.exited;

      expect(code).toBe(0);
      const times = world.vendor.requests.map((request) => request.atMs);
      const busiest = Math.max(
        ...times.map(
          (start) => times.filter((t) => t >= start && t < start + 1000).length,
        ),
      );
      expect(times.length).toBe(8);
      expect(busiest).toBeLessThanOrEqual(3);
      expect(poller.events("ratelimit.waited").length).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  describe("real adapter against simulator", () => {
    const dataset = { seed: 7, assets: 30, findingsPerAsset: 4 };
    const cases: {
      vendor: "qualys" | "rapid7" | "tenable";
      start: (faults: Partial<FaultSettings>) => Promise<{
        url: string;
        groundTruth(): ServedVersion[];
        counters(): {
          quota: { windowsExceeded: number };
          faultsInjected: Record<string, number>;
        };
        stop(): Promise<void>;
      }>;
      env: Record<string, string>;
    }[] = [
      {
        vendor: "qualys",
        start: (faults) =>
          startQualysSimulator({
            ...dataset,
            faults,
            rateLimit: { requests: 60, windowMs: 10_000 },
          }),
        env: {
          QUALYS_USERNAME: "demo",
          QUALYS_PASSWORD: "demo-password",
          QUALYS_TRUNCATION_LIMIT: "7",
        },
      },
      {
        vendor: "rapid7",
        start: (faults) =>
          startRapid7Simulator({
            ...dataset,
            faults,
            rateLimit: { requests: 60, windowMs: 10_000 },
          }),
        env: { RAPID7_API_KEY: "demo-rapid7-key", RAPID7_PAGE_SIZE: "7" },
      },
      {
        vendor: "tenable",
        start: (faults) =>
          startTenableSimulator({
            ...dataset,
            // 50 assets per chunk is the smallest export Tenable accepts.
            assets: 400,
            findingsPerAsset: 2,
            faults,
            rateLimit: { requests: 60, windowMs: 10_000 },
          }),
        env: {
          TENABLE_ACCESS_KEY: "demo-access",
          TENABLE_SECRET_KEY: "demo-secret",
          TENABLE_NUM_ASSETS: "50",
          TENABLE_STATUS_POLL_MIN_MS: "50",
          TENABLE_STATUS_POLL_MAX_MS: "200",
        },
      },
    ];

    // Every kind of fault, often enough to hit each run several times.
    const faults: Partial<FaultSettings> = {
      serverErrorRate: 0.1,
      resetRate: 0.05,
      truncateRate: 0.05,
      malformedRate: 0.05,
      throttleRate: 0.1,
    };
    const runs = cases.flatMap((item) => [
      {
        ...item,
        faults: {},
        name: `${item.vendor} once run logs ground truth`,
      },
      { ...item, faults, name: `${item.vendor} with faults logs ground truth` },
    ]);

    for (const { vendor, start, env, faults: injected, name } of runs) {
      test(
        name,
        async () => {
          const world = createWorld();
          const simulator = await start(injected);
          cleanups.push(() => simulator.stop());
          const flusher = await startFlusher(world);
          const upper = vendor.toUpperCase();
          const poller = startChild([pollerMain], {
            VENDOR: vendor,
            FLUSHER_ADDRESS: flusher.address,
            [`${upper}_BASE_URL`]: simulator.url,
            STATE_DIR: world.stateDir,
            REDIS_KEY_PREFIX: world.prefix,
            RATE_LIMIT_RPM: "40",
            RATE_LIMIT_WINDOW_MS: "10000",
            METRICS_LISTEN: "off",
            ONCE: "true",
            ...env,
          });
          cleanups.push(() => poller.stop());

          const code = await poller.exited;

          if (code !== 0) console.error(poller.output().slice(-4000));
          expect(code).toBe(0);
          const log = readLog(world);
          const truth = simulator
            .groundTruth()
            .map((item) => `${item.findingKey}|${item.version}`);
          expect(new Set(log).size).toBe(log.length);
          expect([...log].sort()).toEqual([...new Set(truth)].sort());
          expect(truth.length).toBeGreaterThan(0);
          expect(simulator.counters().quota.windowsExceeded).toBe(0);
          // The poll loop's line; adapters log under area "adapter".
          const completed = poller
            .events("cycle.completed")
            .filter((line) => line.area === undefined);
          expect(completed.length).toBe(1);
          expect(completed[0]?.written).toBe(log.length);
          const injectedCount = Object.values(
            simulator.counters().faultsInjected,
          ).reduce((sum, count) => sum + count, 0);
          const recoveries = [
            "vendor.request_failed",
            "vendor.throttled",
            "cycle.failed",
          ]
            .map((event) => poller.events(event).length)
            .reduce((sum, count) => sum + count, 0);
          if (Object.keys(injected).length > 0) {
            expect(injectedCount).toBeGreaterThan(0);
            expect(recoveries).toBeGreaterThan(0);
          }
        },
        TEST_TIMEOUT_MS,
      );
    }
  });
});
