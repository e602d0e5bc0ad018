import { afterEach, describe, expect, test } from "bun:test";
import { tenableFindingKey, tenableFindingVersion } from "@vulnsub/shared";
import {
  ALL_STATES,
  call,
  createExport,
  createManualClock,
  getChunk,
  type ManualClock,
  pollStatus,
  startSimulator,
  stopAll,
} from "./tenable-helpers.ts";
import type { TenableSimulatorHandle } from "../src/tenable.ts";

afterEach(stopAll);

/** Exports every state and returns all findings of every chunk. */
async function exportAll(
  simulator: TenableSimulatorHandle,
  filters: Record<string, unknown> = { state: ALL_STATES },
  clock?: ManualClock,
) {
  const uuid = await createExport(simulator, { num_assets: 50, filters });
  const seen = await pollStatus(
    simulator,
    uuid,
    (s) => s.status === "FINISHED",
    { clock },
  );
  const findings: Record<string, any>[] = [];
  for (const chunkId of seen.at(-1)!.chunks_available) {
    findings.push(...(await getChunk(simulator, uuid, chunkId)));
  }
  return { uuid, findings };
}

function versionOf(finding: Record<string, any>) {
  return {
    findingKey: tenableFindingKey({
      findingId: finding.finding_id,
      assetUuid: finding.asset.uuid,
      pluginId: finding.plugin.id,
      port: finding.port.port,
      protocol: finding.port.protocol,
    }),
    version: tenableFindingVersion({
      state: finding.state,
      lastFound: finding.last_found,
      lastFixed: finding.last_fixed ?? null,
    }),
  };
}

function sortedVersions(items: { findingKey: string; version: string }[]) {
  return items.map((item) => `${item.findingKey} ${item.version}`).sort();
}

describe("tenable simulator dataset", () => {
  test("findings have the vendor shape", async () => {
    const simulator = await startSimulator({ assets: 150, findingsPerAsset: 6 });
    const { findings } = await exportAll(simulator);
    expect(findings.length).toBe(900);
    const withId = findings.filter((finding) => finding.finding_id);
    expect(withId.length).toBeGreaterThan(800);
    expect(withId.length).toBeLessThan(900);
    expect(findings.some((finding) => !finding.asset.ipv4)).toBe(true);
    expect(findings.some((finding) => /[^\x00-\x7f]/.test(finding.asset.hostname))).toBe(true);
    expect(findings.some((finding) => finding.port.port === 0)).toBe(true);
    for (const state of ALL_STATES) {
      expect(findings.some((finding) => finding.state === state)).toBe(true);
    }
  });

  test("fixed findings carry last_fixed", async () => {
    const simulator = await startSimulator();
    const { findings } = await exportAll(simulator);
    const fixed = findings.filter((finding) => finding.state === "FIXED");
    expect(fixed.length).toBeGreaterThan(0);
    expect(fixed.every((finding) => typeof finding.last_fixed === "string")).toBe(true);
  });

  test("empty attributes are omitted", async () => {
    const simulator = await startSimulator();
    const { findings } = await exportAll(simulator);
    const text = JSON.stringify(findings);
    expect(text).not.toContain(":null");
    expect(text).not.toContain(":[]");
  });

  test("large findings carry a huge output", async () => {
    const simulator = await startSimulator({
      assets: 60,
      findingsPerAsset: 2,
      largeFindingRate: 0.1,
    });
    const { findings } = await exportAll(simulator);
    const large = findings.filter((finding) => finding.output.length >= 100_000);
    expect(large.length).toBeGreaterThan(0);
    expect(large.every((finding) => finding.output.length <= 510_000)).toBe(true);
  });

  test("same seed gives the same chunks", async () => {
    const baseTimeMs = Date.UTC(2026, 0, 1);
    const first = await startSimulator({ seed: 99, baseTimeMs });
    const second = await startSimulator({ seed: 99, baseTimeMs });
    const a = await exportAll(first);
    const b = await exportAll(second);
    expect(a.uuid).toBe(b.uuid);
    expect(JSON.stringify(a.findings)).toBe(JSON.stringify(b.findings));
  });

  test("another seed gives other findings", async () => {
    const baseTimeMs = Date.UTC(2026, 0, 1);
    const first = await startSimulator({ seed: 1, baseTimeMs });
    const second = await startSimulator({ seed: 2, baseTimeMs });
    const a = await exportAll(first);
    const b = await exportAll(second);
    expect(JSON.stringify(a.findings)).not.toBe(JSON.stringify(b.findings));
  });
});

describe("tenable simulator epochs", () => {
  test("advance changes states and times", async () => {
    const simulator = await startSimulator();
    const before = await exportAll(simulator);
    const advancedAt = Date.now();
    expect(simulator.advanceEpoch()).toBe(1);
    const after = await exportAll(simulator);

    const states = new Map(before.findings.map((f) => [versionOf(f).findingKey, f.state]));
    const changed = after.findings.filter(
      (finding) => Date.parse(finding.last_found) >= advancedAt ||
        Date.parse(finding.last_fixed ?? "0") >= advancedAt,
    );
    const fixedNow = changed.filter(
      (f) => f.state === "FIXED" && states.get(versionOf(f).findingKey) !== "FIXED",
    );
    const reopened = changed.filter(
      (f) => f.state === "REOPENED" && states.get(versionOf(f).findingKey) === "FIXED",
    );
    expect(changed.length).toBeGreaterThan(0);
    expect(fixedNow.length).toBeGreaterThan(0);
    expect(reopened.length).toBeGreaterThan(0);
    expect(simulator.counters().epoch).toBe(1);
  });

  test("since returns only findings changed after it", async () => {
    const clock = createManualClock();
    const simulator = await startSimulator({ clock: clock.now });
    clock.advance(5000);
    const sinceSeconds = Math.floor(clock.now() / 1000);
    simulator.advanceEpoch();
    const { findings } = await exportAll(
      simulator,
      { since: sinceSeconds, state: ALL_STATES },
      clock,
    );
    expect(findings.length).toBeGreaterThan(0);
    for (const finding of findings) {
      const changedAt =
        finding.state === "FIXED" ? finding.last_fixed : finding.last_found;
      expect(Date.parse(changedAt)).toBeGreaterThanOrEqual(sinceSeconds * 1000);
    }
  });

  test("export keeps its snapshot across an advance", async () => {
    const simulator = await startSimulator({ processingDelayMs: 30 });
    const uuid = await createExport(simulator, { num_assets: 500, filters: { state: ALL_STATES } });
    simulator.advanceEpoch();
    await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
    const findings = await getChunk(simulator, uuid, 1);
    const latest = findings.filter(
      (finding) => Date.parse(finding.last_found) > Date.now() - 1000,
    );
    expect(latest).toEqual([]);
  });
});

describe("tenable simulator ground truth", () => {
  test("clean chunks add every finding version", async () => {
    const simulator = await startSimulator();
    const { findings } = await exportAll(simulator);
    const served = simulator.groundTruth();
    expect(sortedVersions(served)).toEqual(sortedVersions(findings.map(versionOf)));
  });

  test("admin route lists the same versions", async () => {
    const simulator = await startSimulator();
    await exportAll(simulator);
    const response = await fetch(`${simulator.url}/_sim/ground-truth`);
    const body = (await response.json()) as { vendor: string; served: unknown[] };
    expect(body.vendor).toBe("tenable");
    expect(body.served.length).toBe(simulator.groundTruth().length);
  });

  for (const fault of ["truncateRate", "malformedRate"] as const) {
    test(`${fault} body is not json and adds nothing`, async () => {
      const simulator = await startSimulator({ faults: { [fault]: 1 } });
      const uuid = await createExport(simulator);
      await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
      const response = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(() => JSON.parse(text)).toThrow();
      expect(simulator.groundTruth()).toEqual([]);
    });
  }

  test("reset body fails the read and adds nothing", async () => {
    const simulator = await startSimulator({ faults: { resetRate: 1 } });
    const uuid = await createExport(simulator);
    await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
    const okBefore = simulator.counters().requestsByStatus["200"] ?? 0;
    const response = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    await Bun.sleep(20);
    const okAfter = simulator.counters().requestsByStatus["200"] ?? 0;
    expect(okAfter).toBeGreaterThan(okBefore);
    expect(simulator.groundTruth()).toEqual([]);
    // Bun's fetch may send the GET again on a fresh connection after the
    // reset, and that attempt is reset too.
    expect(simulator.counters().faultsInjected.reset).toBeGreaterThanOrEqual(1);
  });

  test("slow body is clean and counted", async () => {
    const simulator = await startSimulator({ faults: { slowRate: 1, slowMs: 30 } });
    const { findings } = await exportAll(simulator);
    expect(simulator.groundTruth().length).toBe(findings.length);
    expect(simulator.counters().faultsInjected.slow).toBe(3);
  });
});

describe("tenable simulator faults", () => {
  test("server error rate gives 503 anywhere", async () => {
    const simulator = await startSimulator({ faults: { serverErrorRate: 1 } });
    const response = await call(simulator, "POST", "/vulns/export", {});
    expect(response.status).toBe(503);
    expect(simulator.counters().requestsByStatus["503"]).toBe(1);
  });

  test("throttle rate gives nginx 429", async () => {
    const simulator = await startSimulator({ faults: { throttleRate: 1 } });
    const response = await call(simulator, "GET", "/vulns/export/status");
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("1");
  });

  test("export error rate ends the export in error", async () => {
    const simulator = await startSimulator({
      assets: 200,
      faults: { exportErrorRate: 1 },
    });
    const uuid = await createExport(simulator);
    const seen = await pollStatus(
      simulator,
      uuid,
      (s) => s.status === "ERROR" || s.status === "FINISHED",
    );
    const status = seen.at(-1)!;
    expect(status.status).toBe("ERROR");
    expect(status.reason).toContain("chunks failed");
    expect(status.chunks_failed.length).toBe(2);
    expect(status.chunks_available.length).toBe(2);
  });

  test("faults admin route merges settings", async () => {
    const simulator = await startSimulator();
    const response = await fetch(`${simulator.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ serverErrorRate: 1 }),
    });
    expect(response.status).toBe(200);
    const api = await call(simulator, "GET", "/vulns/export/status");
    expect(api.status).toBe(503);
  });

  test("faults admin route rejects unknown keys", async () => {
    const simulator = await startSimulator();
    const response = await fetch(`${simulator.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ nonsense: 1 }),
    });
    expect(response.status).toBe(400);
  });

  test("advance admin route returns the epoch", async () => {
    const simulator = await startSimulator();
    const response = await fetch(`${simulator.url}/_sim/advance`, { method: "POST" });
    expect(await response.json()).toEqual({ epoch: 1 });
  });
});
