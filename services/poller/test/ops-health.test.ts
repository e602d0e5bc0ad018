import { afterEach, describe, expect, test } from "bun:test";
import { ServingStatus } from "@vulnsub/shared";
import type { RedisState } from "../src/coordination.ts";
import type { PollLoopStatus } from "../src/poll-status.ts";
import {
  assessHealth,
  createPollerHealth,
  jobHealthServiceName,
  type PollerHealth,
} from "../src/poller-health.ts";
import { createLogCapture } from "./helpers/log-capture.ts";

const minuteMs = 60_000;
const start = new Date("2024-05-01T00:00:00Z");
const at = (ms: number) => new Date(start.getTime() + ms);
const job = { vendor: "tenable", source: "default" } as const;

const active: PollLoopStatus = {
  phase: "waiting",
  startedAt: start,
  activeSince: start,
  lastCompletedAt: at(minuteMs),
  lastCycle: {
    records: 0,
    written: 0,
    duplicates: 0,
    pages: 1,
    cursor: "c1",
  },
  consecutiveFailures: 0,
  lastError: null,
  lastFailedAt: null,
};
const redisUp: RedisState = { up: true, since: start, lastError: null };
const limits = (nowMs: number, redis: RedisState = redisUp) => ({
  pollIntervalMs: minuteMs,
  staleFactor: 3,
  now: at(nowMs),
  redis,
});

describe("assessHealth", () => {
  test("zero findings cycle is healthy", () => {
    const verdict = assessHealth(active, limits(2 * minuteMs));

    expect(verdict.healthy).toBe(true);
    expect(verdict.reason).toContain("0 findings");
  });

  test("failure within the limit stays healthy", () => {
    const verdict = assessHealth(
      {
        ...active,
        consecutiveFailures: 1,
        lastError: { code: "vendor_http_status", message: "HTTP 500" },
        lastFailedAt: at(2 * minuteMs),
      },
      limits(2 * minuteMs),
    );

    expect(verdict.healthy).toBe(true);
    expect(verdict.reason).toContain("last cycle failed: vendor_http_status");
  });

  test("redis down is unhealthy", () => {
    const down: RedisState = {
      up: false,
      since: at(30_000),
      lastError: "connect ECONNREFUSED 127.0.0.1:6390",
    };

    const verdict = assessHealth(active, limits(2 * minuteMs, down));

    expect(verdict.healthy).toBe(false);
    expect(verdict.reason).toContain("redis not connected since");
    expect(verdict.reason).toContain("ECONNREFUSED");
  });

  test("redis down standby is unhealthy", () => {
    const down: RedisState = { up: false, since: start, lastError: null };
    const standby = { ...active, phase: "standby" as const, activeSince: null };

    expect(assessHealth(standby, limits(0, down)).healthy).toBe(false);
  });

  test("stopping is unhealthy", () => {
    const verdict = assessHealth(
      { ...active, phase: "stopping" },
      limits(2 * minuteMs),
    );

    expect(verdict.healthy).toBe(false);
    expect(verdict.reason).toBe("poller stopping");
  });

  test("stale limit counts from the lock", () => {
    const fresh = { ...active, lastCompletedAt: null, lastCycle: null };

    expect(assessHealth(fresh, limits(2 * minuteMs)).healthy).toBe(true);
    expect(assessHealth(fresh, limits(4 * minuteMs)).healthy).toBe(false);
  });
});

describe("createPollerHealth", () => {
  let health: PollerHealth | undefined;

  afterEach(() => {
    health?.close();
    health = undefined;
  });

  function startHealth(status: { current: PollLoopStatus }, nowMs: { value: number }) {
    const log = createLogCapture();
    const changes: boolean[] = [];
    health = createPollerHealth({
      job,
      status: () => status.current,
      redis: () => redisUp,
      pollIntervalMs: minuteMs,
      staleFactor: 3,
      logger: log.logger,
      onChange: (healthy) => changes.push(healthy),
      now: () => at(nowMs.value),
      refreshIntervalMs: 60_000,
    });
    return { health, log, changes };
  }

  test("report mirrors into gRPC and logs changes", () => {
    const status = { current: active };
    const now = { value: 2 * minuteMs };
    const { health, log, changes } = startHealth(status, now);
    const service = jobHealthServiceName(job);

    const healthy = health.report();
    now.value = 10 * minuteMs;
    const stale = health.report();
    const staleStatus = health.service.getStatus(service);
    status.current = { ...active, lastCompletedAt: at(10 * minuteMs) };
    const recovered = health.report();

    expect(healthy.healthy).toBe(true);
    expect(healthy.job).toBe("tenable:default");
    expect(healthy.healthService).toBe("vulnsub.poller.tenable.default");
    expect(stale.healthy).toBe(false);
    expect(staleStatus).toBe(ServingStatus.NOT_SERVING);
    expect(health.service.getStatus("")).toBe(ServingStatus.SERVING);
    expect(recovered.healthy).toBe(true);
    expect(changes).toEqual([false, true]);
    const logged = log.events("health.changed");
    expect(logged.map((line) => line.level)).toEqual(["error", "info"]);
    expect(logged[0]?.area).toBe("health");
  });

  test("report carries the failure details", () => {
    const status = {
      current: {
        ...active,
        consecutiveFailures: 2,
        lastError: { code: "rate_limited", message: "throttled 21 times" },
        lastFailedAt: at(3 * minuteMs),
      },
    };
    const { health } = startHealth(status, { value: 3 * minuteMs });

    const report = health.report();

    expect(report.healthy).toBe(true);
    expect(report.consecutiveFailures).toBe(2);
    expect(report.lastError).toEqual({
      code: "rate_limited",
      message: "throttled 21 times",
      at: at(3 * minuteMs).toISOString(),
    });
    expect(report.staleAfterMs).toBe(3 * minuteMs);
    expect((report.redis as { up: boolean }).up).toBe(true);
  });

  test("stop is not logged as unhealthy", () => {
    const status = { current: active };
    const { health, log } = startHealth(status, { value: 2 * minuteMs });

    health.report();
    status.current = { ...active, phase: "stopping" };
    const stopping = health.report();

    expect(stopping.healthy).toBe(false);
    expect(log.events("health.changed").length).toBe(0);
  });
});
