import { afterEach, describe, expect, test } from "bun:test";
import { isVulnsubError } from "@vulnsub/shared";
import {
  startTenableSimulator,
  type TenableSimulatorHandle,
  type TenableSimulatorOptions,
} from "../../../packages/simulators/src/tenable.ts";
import type { VendorHttp } from "../src/adapter.ts";
import {
  createTenableAdapter,
  type TenableSettings,
} from "../src/adapters/tenable.ts";
import { createLogCapture } from "./helpers/log-capture.ts";
import {
  createEnvelopeValidator,
  createSimulatorHttp,
  createSyncContext,
  recordRequests,
  runTenableCycle,
  versionsOf,
} from "./helpers/tenable-http.ts";

const running: TenableSimulatorHandle[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((simulator) => simulator.stop()));
});

const FAST: Partial<TenableSettings> = {
  tenableNumAssets: 50,
  tenableStatusPollMinMs: 5,
  tenableStatusPollMaxMs: 20,
};

async function setup(
  simulatorOptions: Partial<TenableSimulatorOptions> = {},
  settings: Partial<TenableSettings> = {},
) {
  // The simulator runs on real time plus an offset the test can move on.
  const clock = { offsetMs: 0 };
  const simulator = await startTenableSimulator({
    clock: () => Date.now() + clock.offsetMs,
    seed: 11,
    assets: 180,
    findingsPerAsset: 5,
    rateLimit: { requests: 10_000, windowMs: 60_000 },
    processingDelayMs: 5,
    ...simulatorOptions,
  });
  running.push(simulator);
  const logs = createLogCapture();
  const recorder = recordRequests(createSimulatorHttp(simulator.url, logs.logger));
  const adapter = createTenableAdapter({ ...FAST, ...settings });
  const context = (http: VendorHttp = recorder.http) =>
    createSyncContext(http, logs.logger);
  return { simulator, clock, logs, recorder, adapter, context };
}

function chunkRequests(requests: { operation: string; url: string }[]) {
  return requests
    .filter((request) => request.operation === "export.chunk")
    .map((request) => Number(request.url.split("/").at(-1)));
}

describe("tenable adapter against the simulator", () => {
  test("full cycle yields every served version once", async () => {
    const { simulator, adapter, context } = await setup();
    const outcome = await runTenableCycle(adapter, null, context());
    expect(outcome.error).toBeNull();
    expect(outcome.records.length).toBe(900);
    expect(versionsOf(outcome.records)).toEqual(versionsOf(simulator.groundTruth()));
    expect(new Set(versionsOf(outcome.records)).size).toBe(outcome.records.length);
  });

  test("full cycle ends with a watermark cursor", async () => {
    const { adapter, context } = await setup();
    const before = Date.now();
    const outcome = await runTenableCycle(adapter, null, context());
    const last = outcome.batches.at(-1)!;
    const cursor = JSON.parse(last.cursor!);
    expect(last.records).toEqual([]);
    expect(Object.keys(cursor)).toEqual(["watermark"]);
    expect(cursor.watermark).toBeGreaterThanOrEqual(before);
  });

  test("envelopes match the log line schema", async () => {
    const { adapter, context } = await setup();
    const outcome = await runTenableCycle(adapter, null, context());
    const validate = createEnvelopeValidator();
    const errors = outcome.records.map((record) => validate(record.json));
    expect(errors.filter((error) => error !== null)).toEqual([]);
  });

  test("chunk cursor lists the chunk only on its last batch", async () => {
    const { adapter, context } = await setup();
    const small = { ...context(), maxBatchRecords: 40 };
    const outcome = await runTenableCycle(adapter, null, small);
    const chunkBatches = outcome.batches.filter((batch) => batch.page > 0);
    for (const batch of chunkBatches) {
      expect(batch.cursor !== undefined).toBe(batch.endOfPage);
      if (!batch.cursor) continue;
      expect(JSON.parse(batch.cursor).chunksDone).toContain(batch.page);
    }
    expect(chunkBatches.length).toBeGreaterThan(4);
  });

  test("export request uses since from backfill start", async () => {
    const { adapter, recorder, context } = await setup();
    const backfillStart = new Date("2025-01-02T03:04:05Z");
    await runTenableCycle(adapter, null, { ...context(), backfillStart });
    const create = recorder.requests.find((r) => r.operation === "export.create");
    const body = JSON.parse(create!.body!);
    expect(body.filters.since).toBe(Math.floor(backfillStart.getTime() / 1000));
    expect(body.filters.state).toEqual(["OPEN", "REOPENED", "FIXED"]);
    expect(body.num_assets).toBe(50);
    expect(body.include_unlicensed).toBe(false);
  });

  test("resume fetches only missing chunks", async () => {
    const { simulator, adapter, recorder, context } = await setup();
    const first = await runTenableCycle(adapter, null, context(), {
      stopAfterCursors: 2,
    });
    const cursor = JSON.parse(first.cursor!);
    expect(cursor.chunksDone.length).toBe(2);
    const fetchedBefore = chunkRequests(recorder.requests);

    const second = await runTenableCycle(adapter, first.cursor, context());
    const fetchedAfter = chunkRequests(recorder.requests).slice(fetchedBefore.length);
    expect(second.error).toBeNull();
    expect(fetchedAfter.sort()).toEqual(
      [1, 2, 3, 4].filter((id) => !cursor.chunksDone.includes(id)),
    );
    expect(simulator.counters().exports.created).toBe(1);
    const all = [...first.records, ...second.records];
    expect(versionsOf(all)).toEqual(versionsOf(simulator.groundTruth()));
  });

  test("duplicate request adopts the active export", async () => {
    const { simulator, adapter, logs, context } = await setup({
      processingDelayMs: 200,
    });
    const backfillStart = new Date("2025-06-01T00:00:00Z");
    const response = await fetch(`${simulator.url}/vulns/export`, {
      method: "POST",
      headers: { "X-ApiKeys": "accessKey=demo-access;secretKey=demo-secret" },
      body: JSON.stringify({
        num_assets: 50,
        include_unlicensed: false,
        filters: {
          since: Math.floor(backfillStart.getTime() / 1000),
          state: ["OPEN", "REOPENED", "FIXED"],
        },
      }),
    });
    const { export_uuid: activeUuid } = (await response.json()) as {
      export_uuid: string;
    };

    const outcome = await runTenableCycle(adapter, null, {
      ...context(),
      backfillStart,
    });
    expect(outcome.error).toBeNull();
    expect(simulator.counters().exports.duplicates).toBe(1);
    expect(simulator.counters().exports.created).toBe(1);
    expect(logs.events("export.adopted")[0]?.exportUuid).toBe(activeUuid);
    expect(versionsOf(outcome.records)).toEqual(versionsOf(simulator.groundTruth()));
  });

  test("busy container is waited out", async () => {
    const { simulator, adapter, context } = await setup({
      processingDelayMs: 200,
    });
    for (const numAssets of [60, 70]) {
      await fetch(`${simulator.url}/vulns/export`, {
        method: "POST",
        headers: { "X-ApiKeys": "accessKey=demo-access;secretKey=demo-secret" },
        body: JSON.stringify({ num_assets: numAssets }),
      });
    }
    expect(simulator.counters().exports.active).toBe(2);

    const outcome = await runTenableCycle(adapter, null, context());
    expect(outcome.error).toBeNull();
    expect(simulator.counters().exports.rejectedBusy).toBeGreaterThan(0);
    expect(simulator.counters().exports.created).toBe(3);
    expect(outcome.records.length).toBe(900);
  });

  test("expired export starts the window over", async () => {
    const { simulator, clock, adapter, logs, context } = await setup({
      chunkTtlMs: 60_000,
    });
    const first = await runTenableCycle(adapter, null, context(), {
      stopAfterCursors: 1,
    });
    const firstCursor = JSON.parse(first.cursor!);
    clock.offsetMs += 120_000;

    const second = await runTenableCycle(adapter, first.cursor, context());
    expect(second.error).toBeNull();
    expect(logs.events("export.expired").length).toBe(1);
    expect(simulator.counters().exports.created).toBe(2);
    const create = JSON.parse(
      (second.batches.find((b) => b.cursor && b.page > 0)?.cursor)!,
    );
    expect(create.window.since).toBe(firstCursor.window.since);
    expect(create.exportUuid).not.toBe(firstCursor.exportUuid);
    const served = new Set(versionsOf(simulator.groundTruth()));
    expect(new Set(versionsOf(second.records))).toEqual(served);
  });

  test("failed export is requested again", async () => {
    const { simulator, adapter, logs, recorder, context } = await setup({
      faults: { exportErrorRate: 1 },
    });
    const http: VendorHttp = {
      async request(request) {
        const response = await recorder.http.request(request);
        if (request.operation === "export.create") {
          simulator.setFaults({ exportErrorRate: 0 });
        }
        return response;
      },
    };
    const outcome = await runTenableCycle(adapter, null, context(http));
    expect(outcome.error).toBeNull();
    expect(logs.events("export.failed").length).toBe(1);
    expect(logs.events("export.failed")[0]?.level).toBe("error");
    expect(simulator.counters().exports.created).toBe(2);
    const served = new Set(versionsOf(simulator.groundTruth()));
    expect(new Set(versionsOf(outcome.records))).toEqual(served);
  });

  test("export failing every time ends the cycle", async () => {
    const { simulator, adapter, context } = await setup(
      { faults: { exportErrorRate: 1 } },
      { tenableExportAttempts: 3 },
    );
    const outcome = await runTenableCycle(adapter, null, context());
    expect(isVulnsubError(outcome.error)).toBe(true);
    expect((outcome.error as { code: string }).code).toBe("vendor_export_failed");
    expect(simulator.counters().exports.created).toBe(3);
  });

  test("incremental cycle yields only changed findings", async () => {
    const { simulator, clock, adapter, recorder, context } = await setup();
    const first = await runTenableCycle(adapter, null, context());
    const servedBefore = new Set(versionsOf(simulator.groundTruth()));
    // The rescan happens 5 s later on the simulator's clock.
    clock.offsetMs += 5000;
    simulator.advanceEpoch();

    const second = await runTenableCycle(adapter, first.cursor, context());
    const creates = recorder.requests.filter((r) => r.operation === "export.create");
    const since = JSON.parse(creates[1]!.body!).filters.since;
    expect(since).toBe(Math.floor(JSON.parse(first.cursor!).watermark / 1000));
    const fresh = versionsOf(simulator.groundTruth()).filter(
      (version) => !servedBefore.has(version),
    );
    expect(second.records.length).toBeGreaterThan(0);
    expect(versionsOf(second.records)).toEqual(fresh);
    const states = second.records.map((record) => JSON.parse(record.json).state);
    expect(states).toContain("fixed");
    expect(states).toContain("reopened");
  });

  test("cut and reset chunks are downloaded again", async () => {
    const { simulator, adapter, logs, context } = await setup(
      {
        assets: 400,
        faults: { truncateRate: 0.3, resetRate: 0.3, serverErrorRate: 0.1 },
      },
      { tenableChunkAttempts: 8 },
    );
    const outcome = await runTenableCycle(adapter, null, context());
    expect(outcome.error).toBeNull();
    expect(logs.events("chunk.unreadable").length).toBeGreaterThan(0);
    expect(versionsOf(outcome.records)).toEqual(versionsOf(simulator.groundTruth()));
  });

  test("chunk malformed on every download fails", async () => {
    const { adapter, context } = await setup(
      { faults: { malformedRate: 1 } },
      { tenableChunkAttempts: 3 },
    );
    const outcome = await runTenableCycle(adapter, null, context());
    expect(outcome.records).toEqual([]);
    expect((outcome.error as { code: string }).code).toBe("vendor_response_invalid");
    expect(String(outcome.error)).toContain("unreadable after 3 downloads");
  });

  test("throttled requests are retried after retry-after", async () => {
    const { simulator, adapter, context } = await setup({
      // Seed 6 draws two throttles among the first requests; each one
      // waits out its 1 second retry-after.
      seed: 6,
      assets: 60,
      faults: { throttleRate: 0.2 },
    });
    const outcome = await runTenableCycle(adapter, null, context());
    expect(outcome.error).toBeNull();
    expect(simulator.counters().faultsInjected.throttle).toBeGreaterThan(0);
    expect(versionsOf(outcome.records)).toEqual(versionsOf(simulator.groundTruth()));
  });
});
