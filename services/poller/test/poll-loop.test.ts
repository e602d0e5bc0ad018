import { afterEach, describe, expect, test } from "bun:test";
import type { JobRef } from "@vulnsub/shared";
import {
  createFlusherClient,
  type FlusherClient,
} from "../src/flusher-connection.ts";
import {
  createPollLoop,
  type PollLoopOptions,
  type PollLoopStatus,
} from "../src/poll-loop.ts";
import { assessHealth } from "../src/poller-health.ts";
import { createVendorHttp } from "../src/vendor-http.ts";
import {
  createFakeAdapter,
  pageCursor,
  pageKeys,
  type FakeAdapterOptions,
} from "./helpers/fake-adapter.ts";
import { startFakeFlusher, type FakeFlusher } from "./helpers/fake-flusher.ts";
import { createFakeLock, type FakeLock } from "./helpers/fake-lock.ts";
import { fakeCredentials, fakeProfile } from "./helpers/fake-profile.ts";
import { createLogCapture, type LogCapture } from "./helpers/log-capture.ts";
import { waitUntil } from "./helpers/wait-until.ts";

const job: JobRef = { vendor: "tenable", source: "default" };
const jobName = "tenable:default";

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  flusher: FakeFlusher;
  client: FlusherClient;
  lock: FakeLock;
  log: LogCapture;
  adapter: ReturnType<typeof createFakeAdapter>;
  loop: ReturnType<typeof createPollLoop>;
  /** The promise of loop.run(). */
  running: Promise<void>;
}

async function startHarness(
  adapterOptions: FakeAdapterOptions,
  overrides: Partial<PollLoopOptions> = {},
  setup: (flusher: FakeFlusher) => void = () => {},
): Promise<Harness> {
  const flusher = await startFakeFlusher();
  setup(flusher);
  const client = createFlusherClient(flusher.address);
  const log = createLogCapture();
  const lock = createFakeLock(log.logger);
  const adapter = createFakeAdapter(adapterOptions);
  const loop = createPollLoop({
    job,
    adapter,
    createHttp: (signal) =>
      createVendorHttp({
        profile: fakeProfile,
        baseUrl: "http://127.0.0.1:9",
        credentials: fakeCredentials,
        gate: null,
        logger: log.logger,
        signal,
      }),
    lock,
    flusher: client,
    logger: log.logger,
    pollIntervalMs: 3_600_000,
    maxUnackedBatches: 8,
    maxBatchRecords: 500,
    backfillStart: new Date(0),
    lookbackMs: 0,
    cycleRetryBaseMs: 10,
    cycleRetryMaxMs: 20,
    lockRetryDelayMs: 10,
    sender: { reconnectBaseMs: 20, reconnectMaxMs: 100 },
    ...overrides,
  });
  const running = loop.run();
  cleanups.push(async () => {
    loop.stop();
    flusher.holdAcks(false);
    await running.catch(() => undefined);
    client.close();
    await flusher.stop();
  });
  return { flusher, client, lock, log, adapter, loop, running };
}

function expectedLog(pages: number): string[] {
  const keys: string[] = [];
  for (let page = 1; page <= pages; page++) {
    for (const key of pageKeys(page)) keys.push(`${jobName}|${key}|v1`);
  }
  return keys;
}

function expectBetween(value: number | undefined, min: number, max: number) {
  expect(value).toBeGreaterThanOrEqual(min);
  expect(value).toBeLessThanOrEqual(max);
}

function ackedCursors(log: LogCapture): unknown[] {
  return log.events("batch.acked").map((event) => event.cursor);
}

describe("createPollLoop", () => {
  test("cycle delivers every page once", async () => {
    const h = await startHarness(
      { pageCount: () => 3 },
      { once: true, maxBatchRecords: 2 },
    );

    await h.running;

    expect(h.flusher.log).toEqual(expectedLog(3));
    expect(h.flusher.cursorOf(jobName)).toBe(pageCursor(3));
    const completed = h.log.events("cycle.completed");
    expect(completed.length).toBe(1);
    expect(completed[0]?.records).toBe(15);
    expect(completed[0]?.written).toBe(15);
    expect(completed[0]?.duplicates).toBe(0);
    expect(completed[0]?.pages).toBe(3);
    expect(h.log.events("page.fetched").length).toBe(3);
    expect(h.log.events("batch.acked").length).toBe(9);
    expect(h.lock.releases).toBe(1);
  });

  test("empty cycle is a success", async () => {
    const h = await startHarness({ pageCount: () => 0 }, { once: true });

    await h.running;

    const completed = h.log.events("cycle.completed");
    expect(completed.length).toBe(1);
    expect(completed[0]?.records).toBe(0);
    expect(h.log.events("cycle.failed").length).toBe(0);
  });

  test("next cycle starts from durable cursor", async () => {
    let pages = 2;
    const h = await startHarness(
      { pageCount: () => pages },
      { pollIntervalMs: 20 },
    );

    await waitUntil(
      "first cycle",
      () => h.log.events("cycle.completed").length >= 1,
    );
    pages = 5;
    await waitUntil("cycle with pages 3 to 5", () =>
      h.log.events("cycle.completed").some((event) => event.records === 15),
    );
    h.loop.stop();
    await h.running;

    expect(h.adapter.syncCursors[0]).toBeNull();
    expect(h.adapter.syncCursors).toContain(pageCursor(2));
    expect(h.flusher.log).toEqual(expectedLog(5));
  });

  test("cursor advances only after in-order acks", async () => {
    const h = await startHarness(
      { pageCount: () => 4 },
      { once: true },
      (flusher) => flusher.holdAcks(true),
    );

    await waitUntil("4 batches sent", () => h.flusher.received.length === 4);
    const ackedWhileHeld = h.log.events("batch.acked").length;
    h.flusher.releaseAcks(1);
    await waitUntil(
      "first ack",
      () => h.log.events("batch.acked").length === 1,
    );
    const afterFirst = ackedCursors(h.log);
    h.flusher.holdAcks(false);
    await h.running;

    expect(ackedWhileHeld).toBe(0);
    expect(afterFirst).toEqual([pageCursor(1)]);
    expect(ackedCursors(h.log)).toEqual([1, 2, 3, 4].map(pageCursor));
    expect(h.log.events("batch.acked").map((event) => event.seq)).toEqual([
      1, 2, 3, 4,
    ]);
  });

  test("unacked window is bounded", async () => {
    const h = await startHarness(
      { pageCount: () => 20 },
      { once: true, maxUnackedBatches: 3 },
      (flusher) => flusher.holdAcks(true),
    );

    await waitUntil(
      "adapter blocked on a full window",
      () => h.adapter.yielded >= 4 && h.flusher.received.length >= 3,
    );
    const receivedWhileFull = h.flusher.received.length;
    h.flusher.holdAcks(false);
    await h.running;

    expect(receivedWhileFull).toBe(3);
    expect(h.flusher.maxUnacked).toBe(3);
    expect(h.flusher.log).toEqual(expectedLog(20));
  });

  test("dropped stream re-sends unacked batches", async () => {
    const h = await startHarness(
      { pageCount: () => 6 },
      { once: true },
      (flusher) => flusher.dropStreamAfter(3),
    );

    await h.running;

    expect(h.flusher.streamsOpened).toBeGreaterThanOrEqual(2);
    expect(h.flusher.log).toEqual(expectedLog(6));
    expect(h.flusher.cursorOf(jobName)).toBe(pageCursor(6));
    expect(h.log.events("flusher.unavailable").length).toBeGreaterThan(0);
    const completed = h.log.events("cycle.completed")[0];
    expect(completed?.duplicates).toBeGreaterThan(0);
  });

  test("flusher restart mid-cycle loses nothing", async () => {
    const h = await startHarness(
      { pageCount: () => 6 },
      { once: true, maxUnackedBatches: 2 },
      (flusher) => flusher.holdAcks(true),
    );

    await waitUntil("2 batches sent", () => h.flusher.received.length === 2);
    h.flusher.holdAcks(false);
    await h.flusher.restart();
    await h.running;

    expect(h.flusher.streamsOpened).toBeGreaterThanOrEqual(2);
    expect(h.flusher.log).toEqual(expectedLog(6));
    expect(h.flusher.cursorOf(jobName)).toBe(pageCursor(6));
  });

  test("lock loss stops sending at once", async () => {
    const h = await startHarness(
      { pageCount: () => 10 },
      { once: true, maxUnackedBatches: 3 },
      (flusher) => flusher.holdAcks(true),
    );

    await waitUntil(
      "window full",
      () => h.adapter.yielded >= 4 && h.flusher.received.length >= 3,
    );
    h.lock.lose();
    await waitUntil("lock.lost", () => h.log.events("lock.lost").length === 1);
    h.flusher.holdAcks(false);
    await h.running;

    const fromFirstHolder = h.flusher.received.filter(
      (batch) => batch.fencingToken === 1n,
    );
    expect(fromFirstHolder.length).toBe(3);
    expect(h.lock.acquisitions).toBe(2);
    expect(h.log.events("lock.acquired").map((e) => e.fencingToken)).toEqual([
      "1",
      "2",
    ]);
    expect(h.flusher.log).toEqual(expectedLog(10));
  });

  test("newer fencing token is a lock loss", async () => {
    const h = await startHarness(
      { pageCount: () => 10 },
      { maxUnackedBatches: 2 },
      (flusher) => flusher.holdAcks(true),
    );

    await waitUntil("2 batches sent", () => h.flusher.received.length === 2);
    h.flusher.setToken(jobName, 100n);
    h.flusher.releaseAcks(1);
    await waitUntil("lock.lost", () => h.log.events("lock.lost").length >= 1);
    h.loop.stop();
    await h.running;

    const lost = h.log.events("lock.lost")[0];
    expect(lost?.code).toBe("fencing_token_stale");
    expect(h.lock.held).toBe(false);
    expect(h.flusher.cursorOf(jobName)).toBe(pageCursor(1));
  });

  test("token below flusher's is refreshed once", async () => {
    const h = await startHarness({ pageCount: () => 2 }, { once: true }, (f) =>
      f.setToken(jobName, 50n),
    );

    await h.running;

    const refreshed = h.log.events("fencing.refreshed");
    expect(refreshed.length).toBe(1);
    expect(refreshed[0]?.fencingToken).toBe("51");
    expect(h.flusher.tokenOf(jobName)).toBe(51n);
    expect(h.flusher.log).toEqual(expectedLog(2));
    expect(h.log.events("lock.lost").length).toBe(0);
  });

  test("adapter failure retries from durable cursor", async () => {
    let failures = 0;
    const h = await startHarness(
      {
        pageCount: () => 4,
        failPage: (page) => page === 3 && failures++ === 0,
      },
      { once: true },
    );

    await h.running;

    const failed = h.log.events("cycle.failed");
    expect(failed.length).toBe(1);
    expect(failed[0]?.code).toBe("vendor_response_invalid");
    expect(h.adapter.syncCursors).toEqual([null, pageCursor(2)]);
    expect(h.flusher.log).toEqual(expectedLog(4));
    expect(h.loop.status().consecutiveFailures).toBe(0);
  });

  test("cycle retry backoff grows, caps and resets", async () => {
    // Cycles: fail, fail, fail, complete, fail, complete, ...
    let cycle = 0;
    const failing = new Set([1, 2, 3, 5]);
    const h = await startHarness(
      {
        // One new page per cycle, so every cycle fetches a page.
        pageCount: () => ++cycle,
        failPage: () => failing.has(cycle),
      },
      { pollIntervalMs: 5, cycleRetryBaseMs: 20, cycleRetryMaxMs: 50 },
    );

    await waitUntil(
      "second completed cycle",
      () => h.log.events("cycle.completed").length >= 2,
    );
    h.loop.stop();
    await h.running;

    const delays = h.log
      .events("cycle.failed")
      .map((event) => event.retryInMs as number);
    expect(delays.length).toBe(4);
    // Each delay is jittered between half and all of its full value.
    expectBetween(delays[0], 10, 20);
    expectBetween(delays[1], 20, 40);
    expectBetween(delays[2], 25, 50);
    expectBetween(delays[3], 10, 20);
    expect(h.log.events("cycle.failed")[3]?.attempt).toBe(1);
  });

  test("stop finishes the page in flight", async () => {
    const h = await startHarness(
      { pageCount: () => 5, batchDelayMs: 30 },
      { maxBatchRecords: 1 },
    );

    await waitUntil("mid page 1", () => h.adapter.yielded >= 2);
    h.loop.stop();
    await h.running;

    expect(h.flusher.log).toEqual(expectedLog(1));
    expect(h.flusher.cursorOf(jobName)).toBe(pageCursor(1));
    expect(h.log.events("cycle.completed").length).toBe(0);
    expect(h.lock.releases).toBe(1);
    expect(h.loop.status().phase).toBe("stopped");
  });

  test("stop while flusher is down is prompt", async () => {
    const h = await startHarness({ pageCount: () => 1 }, {}, (flusher) => {
      void flusher.stop();
    });

    await waitUntil(
      "flusher.unavailable",
      () => h.log.events("flusher.unavailable").length >= 1,
    );
    h.loop.stop();
    await h.running;

    expect(h.lock.releases).toBe(1);
    expect(h.loop.status().phase).toBe("stopped");
  });
});

describe("assessHealth", () => {
  const hourMs = 3_600_000;
  const start = new Date("2024-05-01T00:00:00Z");
  const at = (ms: number) => new Date(start.getTime() + ms);
  const base: PollLoopStatus = {
    phase: "waiting",
    startedAt: start,
    activeSince: start,
    lastCompletedAt: null,
    lastCycle: null,
    consecutiveFailures: 0,
    lastError: null,
    lastFailedAt: null,
  };
  const options = (nowMs: number) => ({
    pollIntervalMs: hourMs,
    staleFactor: 3,
    now: at(nowMs),
  });

  test("standby is healthy", () => {
    const report = assessHealth(
      { ...base, phase: "standby", activeSince: null },
      options(10 * hourMs),
    );

    expect(report.healthy).toBe(true);
    expect(report.reason).toContain("standby");
  });

  test("failing first cycle is unhealthy", () => {
    const report = assessHealth(
      {
        ...base,
        consecutiveFailures: 2,
        lastError: { code: "vendor_http_status", message: "HTTP 401" },
      },
      options(60_000),
    );

    expect(report.healthy).toBe(false);
    expect(report.reason).toContain("vendor_http_status");
  });

  test("stale last cycle is unhealthy", () => {
    const report = assessHealth(
      { ...base, lastCompletedAt: at(hourMs) },
      options(5 * hourMs),
    );

    expect(report.healthy).toBe(false);
    expect(report.reason).toContain("no cycle completed for 14400 s");
  });

  test("recent cycle is healthy", () => {
    const report = assessHealth(
      { ...base, lastCompletedAt: at(hourMs) },
      options(2 * hourMs),
    );

    expect(report.healthy).toBe(true);
  });
});
