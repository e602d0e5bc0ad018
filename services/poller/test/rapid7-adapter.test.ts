import { afterEach, describe, expect, test } from "bun:test";
import { errorCodeOf } from "@vulnsub/shared";
import {
  startRapid7Simulator,
  type Rapid7SimulatorHandle,
  type Rapid7SimulatorOptions,
} from "../../../packages/simulators/src/rapid7.ts";
import type { SyncContext } from "../src/adapter.ts";
import {
  createRapid7Adapter,
  rapid7Profile,
  type Rapid7AdapterOptions,
} from "../src/adapters/rapid7.ts";
import { createVendorHttp } from "../src/vendor-http.ts";
import { createLogCapture, type LogCapture } from "./helpers/log-capture.ts";
import {
  collectSync,
  createClock,
  createEnvelopeValidator,
  createRecordingHttp,
  createSyncContext,
  versionsOf,
} from "./helpers/rapid7-http.ts";

const START_MS = Date.parse("2025-06-01T12:00:00.000Z");
const HOUR_MS = 3_600_000;

const running: Rapid7SimulatorHandle[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.stop()));
});

interface Setup {
  sim: Rapid7SimulatorHandle;
  clock: ReturnType<typeof createClock>;
  logs: LogCapture;
  requests: ReturnType<typeof createRecordingHttp>["requests"];
  context: SyncContext;
}

async function setup(
  simOptions: Partial<Rapid7SimulatorOptions> = {},
  contextOverrides: Partial<SyncContext> = {},
): Promise<Setup> {
  const clock = createClock(START_MS);
  const sim = await startRapid7Simulator({
    seed: 21,
    assets: 40,
    findingsPerAsset: 6,
    rateLimit: { requests: 100_000, windowMs: 60_000 },
    startTime: clock.now(),
    now: clock.now,
    ...simOptions,
  });
  running.push(sim);
  clock.advance(60_000);
  const logs = createLogCapture();
  const vendorHttp = createVendorHttp({
    profile: rapid7Profile,
    baseUrl: sim.url,
    credentials: { vendor: "rapid7", apiKey: "demo-rapid7-key" },
    gate: null,
    logger: logs.logger,
    baseBackoffMs: 1,
    maxBackoffMs: 5,
    maxAttempts: 10,
  });
  const { http, requests } = createRecordingHttp(vendorHttp);
  const context = createSyncContext(http, logs.logger, {
    now: clock.now,
    maxBatchRecords: 50,
    backfillStart: new Date(START_MS - 30 * 24 * HOUR_MS),
    ...contextOverrides,
  });
  return { sim, clock, logs, requests, context };
}

function adapter(options: Partial<Rapid7AdapterOptions> = {}) {
  return createRapid7Adapter({ pageSize: 7, ...options });
}

const groundTruthOf = (sim: Rapid7SimulatorHandle) =>
  sim
    .groundTruth()
    .map((item) => `${item.findingKey} ${item.version}`)
    .sort();

const sorted = (items: string[]) => [...items].sort();

describe("rapid7 adapter against the simulator", () => {
  test("full cycle yields every version once", async () => {
    const { sim, context } = await setup();
    const outcome = await collectSync(adapter(), null, context);
    expect(outcome.error).toBeUndefined();

    const versions = versionsOf(outcome.batches);
    expect(versions.length).toBe(40 * 6);
    expect(new Set(versions).size).toBe(versions.length);
    expect(sorted(versions)).toEqual(groundTruthOf(sim));

    const cursor = JSON.parse(outcome.cursor as string);
    expect(cursor.cycle).toBeNull();
    expect(cursor.watermark).toBe(new Date(START_MS + 60_000).toISOString());
  });

  test("records match the log schema", async () => {
    const { context } = await setup({ assets: 15 });
    const outcome = await collectSync(adapter(), null, context);
    const validate = createEnvelopeValidator();
    const records = outcome.batches.flatMap((batch) => batch.records);
    expect(records.length).toBe(15 * 6);
    for (const record of records) expect(validate(record.json)).toBeNull();
    for (const record of records)
      expect(record.json.includes("\n")).toBe(false);
  });

  test("cursor only on the last batch of a page", async () => {
    const { context } = await setup({}, { maxBatchRecords: 4 });
    const outcome = await collectSync(adapter(), null, context);
    for (const batch of outcome.batches) {
      expect(batch.cursor !== undefined).toBe(batch.endOfPage);
      expect(batch.records.length).toBeLessThanOrEqual(4);
    }
    const pages = outcome.batches.filter((batch) => batch.endOfPage);
    expect(pages.map((batch) => batch.page)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  test("incremental cycle after an epoch", async () => {
    const { sim, clock, context, requests } = await setup();
    const first = await collectSync(adapter(), null, context);
    clock.advance(HOUR_MS);
    sim.advanceEpoch();
    clock.advance(HOUR_MS);
    requests.length = 0;

    const second = await collectSync(adapter(), first.cursor, context);
    expect(second.error).toBeUndefined();
    const added = versionsOf(second.batches);
    expect(added.length).toBeGreaterThan(0);
    expect(new Set(added).size).toBe(added.length);
    const union = new Set([...versionsOf(first.batches), ...added]);
    expect(sorted([...union])).toEqual(groundTruthOf(sim));

    const lists = second.batches.flatMap((batch) =>
      batch.records.map((record) => JSON.parse(record.json).raw.list),
    );
    expect(lists).not.toContain("same");
    const states = new Set(
      second.batches.flatMap((batch) =>
        batch.records.map((record) => JSON.parse(record.json).state),
      ),
    );
    expect(states.has("fixed")).toBe(true);

    const firstUrl = new URL(requests[0]?.url ?? "", "http://x/");
    expect(firstUrl.searchParams.get("includeSame")).toBeNull();
    expect(firstUrl.searchParams.get("comparisonTime")).toBe(
      new Date(START_MS + 60_000 - 5 * 60_000).toISOString(),
    );
    expect(firstUrl.searchParams.get("currentTime")).toBe(
      new Date(START_MS + 60_000 + 2 * HOUR_MS).toISOString(),
    );
  });

  test("several epochs stay complete", async () => {
    const { sim, clock, context } = await setup({ assets: 25 });
    const seen = new Set<string>();
    const states = new Set<string>();
    let cursor: string | null = null;
    for (let cycle = 0; cycle < 4; cycle++) {
      const outcome = await collectSync(adapter(), cursor, context);
      expect(outcome.error).toBeUndefined();
      for (const version of versionsOf(outcome.batches)) seen.add(version);
      for (const batch of outcome.batches) {
        for (const record of batch.records) {
          states.add(JSON.parse(record.json).state);
        }
      }
      cursor = outcome.cursor;
      clock.advance(HOUR_MS);
      sim.advanceEpoch();
      clock.advance(HOUR_MS);
    }
    expect(sorted([...seen])).toEqual(groundTruthOf(sim));
    expect([...states].sort()).toEqual(["fixed", "open", "reopened"]);
  });

  test("enrichment is batched", async () => {
    const { context, requests } = await setup({
      assets: 60,
      findingsPerAsset: 8,
    });
    const outcome = await collectSync(
      adapter({ pageSize: 25, definitionBatchSize: 20 }),
      null,
      context,
    );
    expect(outcome.error).toBeUndefined();

    const lookups = requests.filter(
      (request) =>
        request.operation === "vulnerabilities" &&
        !request.url.includes("cursor="),
    );
    const asked = lookups.flatMap((request) =>
      [
        ...(JSON.parse(request.body ?? "{}").vulnerability as string).matchAll(
          /'([^']+)'/g,
        ),
      ].map((match) => match[1] as string),
    );
    const distinct = new Set(
      outcome.batches.flatMap((batch) =>
        batch.records.map((record) => JSON.parse(record.json).vulnerability.id),
      ),
    );
    expect(new Set(asked).size).toBe(asked.length);
    expect(new Set(asked)).toEqual(distinct);
    for (const request of lookups) {
      const ids = (request.body ?? "").match(/'[^']+'/g) ?? [];
      expect(ids.length).toBeLessThanOrEqual(20);
    }
    expect(lookups.length).toBeLessThan(distinct.size / 5);
    const titled = outcome.batches.flatMap((batch) =>
      batch.records.filter(
        (record) => JSON.parse(record.json).vulnerability.title,
      ),
    );
    expect(titled.length).toBeGreaterThan(0);
  });

  test("backfill sends the asset criteria", async () => {
    const backfillStart = new Date(START_MS - 24 * HOUR_MS);
    const { sim, context, requests } = await setup({}, { backfillStart });
    const outcome = await collectSync(adapter(), null, context);
    const request = requests.find((item) => item.operation === "assets");
    expect(JSON.parse(request?.body ?? "{}")).toEqual({
      asset: `last_scan_end > ${backfillStart.toISOString()}`,
    });
    expect(
      new URL(request?.url ?? "", "http://x/").searchParams.get("includeSame"),
    ).toBe("true");

    const versions = versionsOf(outcome.batches);
    expect(versions.length).toBeGreaterThan(0);
    expect(versions.length).toBeLessThan(40 * 6);
    expect(sorted(versions)).toEqual(groundTruthOf(sim));
  });
});

describe("rapid7 adapter resume", () => {
  test("resumes from a mid-cycle cursor", async () => {
    const { sim, context } = await setup();
    const full = await collectSync(adapter(), null, context);
    const pageTwo = full.batches.find(
      (batch) => batch.endOfPage && batch.page === 2,
    );
    const before = full.batches.filter((batch) => batch.page <= 2);

    const resumed = await collectSync(
      adapter(),
      pageTwo?.cursor ?? null,
      context,
    );
    expect(resumed.error).toBeUndefined();
    expect(resumed.batches[0]?.page).toBe(3);
    const union = [...versionsOf(before), ...versionsOf(resumed.batches)];
    expect(sorted(union)).toEqual(groundTruthOf(sim));
  });

  test("stale vendor cursor restarts the cycle", async () => {
    const { sim, context, logs } = await setup();
    const full = await collectSync(adapter(), null, context);
    const pageTwo = full.batches.find(
      (batch) => batch.endOfPage && batch.page === 2,
    );
    const cursor = JSON.parse(pageTwo?.cursor ?? "{}");
    cursor.cycle.apiCursor = "12345:::_S:::no-such-search";

    const restarted = await collectSync(
      adapter(),
      JSON.stringify(cursor),
      context,
    );
    expect(restarted.error).toBeUndefined();
    expect(restarted.batches[0]?.page).toBe(1);
    expect(logs.events("cursor.rejected").length).toBe(1);
    expect(sorted(versionsOf(restarted.batches))).toEqual(groundTruthOf(sim));
  });
});

describe("rapid7 adapter with faults", () => {
  test("429 over the rate is waited out", async () => {
    const { sim, context } = await setup({
      assets: 20,
      rateLimit: { requests: 4, windowMs: 1000 },
    });
    const outcome = await collectSync(adapter(), null, context);
    expect(outcome.error).toBeUndefined();
    expect(sorted(versionsOf(outcome.batches))).toEqual(groundTruthOf(sim));
    expect(sim.counters().requestsByStatus["429"]).toBeGreaterThan(0);
  });

  test("retried cycles lose nothing", async () => {
    const { sim, context } = await setup({
      faults: {
        serverErrorRate: 0.15,
        truncateRate: 0.15,
        malformedRate: 0.15,
        resetRate: 0.1,
        slowRate: 0.1,
        slowMs: 5,
      },
    });
    const seen = new Set<string>();
    const errors: string[] = [];
    let cursor: string | null = null;
    let completed = false;
    // The poll loop's behaviour: after an error, start again from the last
    // cursor the adapter handed out.
    for (let attempt = 0; attempt < 60 && !completed; attempt++) {
      const outcome = await collectSync(adapter(), cursor, context);
      for (const version of versionsOf(outcome.batches)) seen.add(version);
      cursor = outcome.cursor;
      if (outcome.error === undefined) completed = true;
      else errors.push(errorCodeOf(outcome.error));
    }
    expect(completed).toBe(true);
    expect(errors).toContain("vendor_response_invalid");
    expect(sorted([...seen])).toEqual(groundTruthOf(sim));
    expect(sim.counters().faultsInjected.truncate).toBeGreaterThan(0);
  });
});
