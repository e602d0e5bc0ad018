import { afterEach, describe, expect, test } from "bun:test";
import { rapid7FindingKey, rapid7FindingVersion } from "@vulnsub/shared";
import type { FaultSettings } from "../src/common.ts";
import {
  startRapid7Simulator,
  type Rapid7SimulatorHandle as SimulatorHandle,
} from "../src/rapid7.ts";

const KEY = "demo-rapid7-key";
const PAGE = "/vm/v4/integration/assets?size=4&includeSame=true";

const running: SimulatorHandle[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.stop()));
});

async function start(
  faults: Partial<FaultSettings> = {},
  rateLimit = { requests: 10_000, windowMs: 60_000 },
) {
  const sim = await startRapid7Simulator({
    seed: 5,
    assets: 10,
    findingsPerAsset: 3,
    rateLimit,
    faults,
  });
  running.push(sim);
  return sim;
}

function requestPage(sim: SimulatorHandle, path = PAGE) {
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "X-Api-Key": KEY, "Content-Type": "application/json" },
    body: "{}",
  });
}

describe("rapid7 simulator rate limit", () => {
  test("over budget gives 429 with Retry-After", async () => {
    const sim = await start({}, { requests: 3, windowMs: 60_000 });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let n = 0; n < 4; n++) {
      const response = await requestPage(sim);
      statuses.push(response.status);
      retryAfter = response.headers.get("retry-after");
      await response.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);

    const counters = sim.counters();
    expect(counters.quota.requests).toBe(4);
    expect(counters.quota.windowsExceeded).toBe(1);
    expect(counters.requestsByStatus["429"]).toBe(1);
  });

  test("admin routes are not counted", async () => {
    const sim = await start({}, { requests: 1, windowMs: 60_000 });
    for (let n = 0; n < 3; n++) await fetch(`${sim.url}/_sim/counters`);
    expect(sim.counters().quota.requests).toBe(0);
  });
});

describe("rapid7 simulator faults", () => {
  test("503 carries the server error body", async () => {
    const sim = await start({ serverErrorRate: 1 });
    const response = await requestPage(sim);
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status).toBe(503);
    expect(body.message).toContain("unexpected error");
    expect(sim.counters().faultsInjected.serverError).toBe(1);
  });

  test("throttle fault gives 429 with Retry-After", async () => {
    const sim = await start({ throttleRate: 1 });
    const response = await requestPage(sim);
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("1");
  });

  test("truncated body is a short 200", async () => {
    const sim = await start({ truncateRate: 1 });
    const response = await requestPage(sim);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(() => JSON.parse(text)).toThrow();
  });

  test("malformed body is not JSON", async () => {
    const sim = await start({ malformedRate: 1 });
    const response = await requestPage(sim);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(() => JSON.parse(text)).toThrow();
  });

  test("reset breaks the body read", async () => {
    const sim = await start({ resetRate: 1 });
    let failed = false;
    try {
      const response = await requestPage(sim);
      await response.text();
    } catch {
      failed = true;
    }
    expect(failed).toBe(true);
  });

  test("slow response arrives complete", async () => {
    const sim = await start({ slowRate: 1, slowMs: 50 });
    const response = await requestPage(sim);
    const page = (await response.json()) as { data: unknown[] };
    expect(page.data.length).toBe(4);
    expect(sim.counters().faultsInjected.slow).toBe(1);
  });

  test("only clean pages reach the ground truth", async () => {
    const sim = await start();
    for (const fault of [
      { serverErrorRate: 1 },
      { throttleRate: 1 },
      { truncateRate: 1 },
      { malformedRate: 1 },
    ]) {
      sim.setFaults({ ...fault });
      await (await requestPage(sim)).arrayBuffer();
      sim.setFaults({
        serverErrorRate: 0,
        throttleRate: 0,
        truncateRate: 0,
        malformedRate: 0,
      });
    }
    sim.setFaults({ resetRate: 1 });
    await requestPage(sim)
      .then((response) => response.text())
      .catch(() => "");
    expect(sim.groundTruth()).toEqual([]);

    sim.setFaults({ resetRate: 0 });
    const page = (await (await requestPage(sim)).json()) as {
      data: Record<string, unknown>[];
    };
    const expected = page.data.flatMap((asset) =>
      (asset.same as Record<string, unknown>[]).map((finding) => ({
        findingKey: rapid7FindingKey({
          assetId: asset.id as string,
          vulnerabilityId: finding.vulnerability_id as string,
          key: finding.key as string,
          port: finding.port as number | null,
          protocol: finding.protocol as string | null,
        }),
        version: rapid7FindingVersion({
          state: "open",
          status: finding.status as string,
          lastFound: finding.last_found as string,
          reintroduced: finding.reintroduced as string | null,
        }),
      })),
    );
    // 'finish' fires after the client has the body; wait for it briefly.
    for (let n = 0; n < 50 && sim.groundTruth().length === 0; n++) {
      await Bun.sleep(10);
    }
    expect(sim.groundTruth()).toEqual(expected);
  });

  test("fault sequence follows the seed", async () => {
    const settings = { serverErrorRate: 0.5, truncateRate: 0.3 };
    const statuses: string[][] = [];
    for (const sim of [await start(settings), await start(settings)]) {
      const seen: string[] = [];
      for (let n = 0; n < 8; n++) {
        const response = await requestPage(sim);
        const text = await response.text();
        seen.push(`${response.status}:${text.length}`);
      }
      statuses.push(seen);
    }
    expect(statuses[0]).toEqual(statuses[1] as string[]);
  });
});
