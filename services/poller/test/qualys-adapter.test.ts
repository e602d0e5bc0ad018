import { afterEach, describe, expect, test } from "bun:test";
import {
  errorCodeOf,
  isVulnsubError,
  type Logger,
  type VulnsubError,
} from "@vulnsub/shared";
import {
  startQualysSimulator,
  type QualysSimulatorHandle,
  type QualysSimulatorOptions,
} from "../../../packages/simulators/src/qualys.ts";
import type { AdapterBatch, SyncContext } from "../src/adapter.ts";
import { createQualysAdapter, qualysProfile } from "../src/adapters/qualys.ts";
import { createVendorHttp } from "../src/vendor-http.ts";
import { createLogCapture } from "./helpers/log-capture.ts";
import {
  createEnvelopeValidator,
  createTestContext,
  lastCursor,
  recordsOf,
  runCycle,
} from "./helpers/qualys-http.ts";

const running: QualysSimulatorHandle[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.stop()));
});

async function startSimulator(options: Partial<QualysSimulatorOptions> = {}) {
  const sim = await startQualysSimulator({
    seed: 21,
    assets: 25,
    findingsPerAsset: 6,
    ...options,
  });
  running.push(sim);
  return sim;
}

function contextFor(
  sim: QualysSimulatorHandle,
  overrides: Partial<SyncContext> = {},
  logger: Logger = createLogCapture().logger,
): SyncContext {
  const http = createVendorHttp({
    profile: qualysProfile,
    baseUrl: sim.url,
    credentials: {
      vendor: "qualys",
      username: "demo",
      password: "demo-password",
    },
    gate: null,
    logger,
    baseBackoffMs: 5,
    maxBackoffMs: 50,
  });
  return createTestContext(http, {
    now: () => new Date(),
    logger,
    ...overrides,
  });
}

function versionKeys(
  items: readonly { findingKey: string; version: string }[],
) {
  return items.map((item) => `${item.findingKey} ${item.version}`).sort();
}

function cursorOf(batch: AdapterBatch | undefined) {
  return JSON.parse(batch?.cursor ?? "null") as Record<string, unknown> | null;
}

describe("qualys adapter against the simulator", () => {
  test("full cycle yields every served version once", async () => {
    const sim = await startSimulator();
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      truncationLimit: 4,
    });
    const { batches, error } = await runCycle(
      adapter,
      null,
      contextFor(sim, {
        maxBatchRecords: 7,
      }),
    );
    const records = recordsOf(batches);
    const pages = batches.filter((batch) => batch.endOfPage);
    expect(error).toBeNull();
    expect(versionKeys(records)).toEqual(versionKeys(sim.groundTruth()));
    expect(new Set(versionKeys(records)).size).toBe(records.length);
    expect(pages.length).toBe(7);
    expect(batches.every((batch) => batch.records.length <= 7)).toBe(true);
    expect(
      batches.every(
        (batch) => (batch.cursor !== undefined) === batch.endOfPage,
      ),
    ).toBe(true);
    expect(cursorOf(batches.at(-1))?.phase).toBe("done");
    expect(sim.counters().quota.windowsExceeded).toBe(0);
  });

  test("envelopes match the schema", async () => {
    const sim = await startSimulator({ assets: 10, largeFindingRate: 0.05 });
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      showIgs: true,
      showQds: true,
    });
    const validate = createEnvelopeValidator();
    const { batches, error } = await runCycle(adapter, null, contextFor(sim));
    const records = recordsOf(batches);
    expect(error).toBeNull();
    expect(records.length).toBe(sim.counters().findings);
    for (const record of records) expect(validate(record.json)).toBeNull();
  });

  test("resuming from a page cursor finishes the cycle", async () => {
    const sim = await startSimulator();
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      truncationLimit: 5,
    });
    const context = contextFor(sim);
    const first = await runCycle(adapter, null, context, 2);
    const resumeAt = lastCursor(first.batches, null);
    const second = await runCycle(adapter, resumeAt, context);
    const records = [...recordsOf(first.batches), ...recordsOf(second.batches)];
    expect(cursorOf(first.batches.at(-1))?.phase).toBe("paging");
    expect(second.error).toBeNull();
    expect(new Set(versionKeys(records))).toEqual(
      new Set(versionKeys(sim.groundTruth())),
    );
    expect(cursorOf(second.batches.at(-1))?.watermark).toBe(
      cursorOf(first.batches.at(-1))?.cycleStartedAt,
    );
  });

  test("incremental cycle gets the changed detections", async () => {
    const sim = await startSimulator({ assets: 40 });
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      truncationLimit: 10,
    });
    const context = contextFor(sim, { lookbackMs: 5_000 });
    const full = await runCycle(adapter, null, context);
    const before = new Set(versionKeys(sim.groundTruth()));
    sim.advanceEpoch();
    const incremental = await runCycle(
      adapter,
      lastCursor(full.batches, null),
      context,
    );
    const records = recordsOf(incremental.batches);
    const changed = versionKeys(sim.groundTruth()).filter(
      (key) => !before.has(key),
    );
    expect(incremental.error).toBeNull();
    expect(records.length).toBeGreaterThan(0);
    expect(records.length).toBeLessThan(sim.counters().findings / 2);
    expect(versionKeys(records)).toEqual(changed.sort());
  });

  test("incremental request subtracts the lookback", async () => {
    const sim = await startSimulator({ assets: 3 });
    const adapter = createQualysAdapter({ baseUrl: sim.url });
    const cursor = JSON.stringify({
      formatVersion: 1,
      phase: "done",
      watermark: "2026-03-01T10:00:00.500Z",
    });
    const seen: string[] = [];
    const context = contextFor(sim, { lookbackMs: 60_000 });
    const http = context.http;
    const spied = {
      ...context,
      http: {
        request: (request: Parameters<typeof http.request>[0]) => {
          seen.push(request.url);
          return http.request(request);
        },
      },
    };
    await runCycle(adapter, cursor, spied);
    const params = new URL(seen[0] ?? "").searchParams;
    expect(params.get("detection_processed_after")).toBe(
      "2026-03-01T09:59:00Z",
    );
    expect(params.get("status")).toBe("New,Active,Fixed,Re-Opened");
    expect(params.get("show_results")).toBe("1");
    expect(params.get("show_igs")).toBe("0");
  });

  test("rate throttles are waited out", async () => {
    const sim = await startSimulator({
      assets: 12,
      rateLimit: { requests: 3, windowMs: 1_000 },
    });
    const capture = createLogCapture();
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      truncationLimit: 2,
    });
    const { batches, error } = await runCycle(
      adapter,
      null,
      contextFor(sim, {}, capture.logger),
    );
    const throttled = capture.events("vendor.throttled");
    expect(error).toBeNull();
    expect(versionKeys(recordsOf(batches))).toEqual(
      versionKeys(sim.groundTruth()),
    );
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled.every((line) => line.reason === "qualys 1965")).toBe(true);
    expect(sim.counters().requestsByStatus["409"]).toBe(throttled.length);
    // Each 1965 names the wait; the client never asks again before it ends.
    expect(throttled.length).toBeLessThanOrEqual(3);
  });

  test("body faults fail the cycle and a rerun recovers", async () => {
    const sim = await startSimulator({
      faults: {
        resetRate: 0.2,
        truncateRate: 0.2,
        malformedRate: 0.2,
        serverErrorRate: 0.1,
      },
    });
    const adapter = createQualysAdapter({
      baseUrl: sim.url,
      truncationLimit: 4,
    });
    const context = contextFor(sim, { maxBatchRecords: 5 });
    const produced: string[] = [];
    const failures: unknown[] = [];
    let cursor: string | null = null;

    for (let attempt = 0; attempt < 60; attempt++) {
      const result = await runCycle(adapter, cursor, context);
      produced.push(...versionKeys(recordsOf(result.batches)));
      cursor = lastCursor(result.batches, cursor);
      if (!result.error) break;
      failures.push(result.error);
    }

    expect(JSON.parse(cursor ?? "null")?.phase).toBe("done");
    expect(failures.length).toBeGreaterThan(0);
    expect(
      failures.every(
        (failure) =>
          isVulnsubError(failure) && failure.message.startsWith("qualys "),
      ),
    ).toBe(true);
    expect(new Set(produced)).toEqual(new Set(versionKeys(sim.groundTruth())));
    expect(sim.counters().faultsInjected).not.toEqual({});
  });

  test("bad credentials fail with HTTP 401", async () => {
    const sim = await startSimulator({
      credentials: { username: "demo", password: "other" },
    });
    const adapter = createQualysAdapter({ baseUrl: sim.url });
    const { error, batches } = await runCycle(adapter, null, contextFor(sim));
    expect(errorCodeOf(error)).toBe("vendor_http_status");
    expect((error as VulnsubError).context.status).toBe(401);
    expect(batches).toEqual([]);
  });
});
