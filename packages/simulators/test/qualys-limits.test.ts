import { afterEach, describe, expect, test } from "bun:test";
import {
  createSimulatorPool,
  elementTexts,
  getDetections,
  readAllPages,
} from "./qualys-helpers.ts";

const pool = createSimulatorPool();
afterEach(() => pool.stopAll());

describe("qualys simulator limits", () => {
  test("call over the rate gets 409 1965", async () => {
    const sim = await pool.start({
      rateLimit: { requests: 2, windowMs: 60_000 },
    });
    for (let i = 0; i < 2; i++)
      await (await getDetections(sim, "action=list")).text();
    const response = await getDetections(sim, "action=list");
    const body = await response.text();
    const toWait = Number(response.headers.get("x-ratelimit-towait-sec"));
    expect(response.status).toBe(409);
    expect(elementTexts(body, "CODE")).toEqual(["1965"]);
    expect(elementTexts(body, "KEY")).toEqual(["SECONDS_TO_WAIT"]);
    expect(Number(elementTexts(body, "VALUE")[0])).toBeGreaterThan(0);
    expect(toWait).toBeGreaterThan(0);
    expect(response.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(elementTexts(body, "TEXT")[0]).toStartWith(
      "This API cannot be run again for another",
    );
  });

  test("window frees calls after windowMs", async () => {
    const sim = await pool.start({ rateLimit: { requests: 1, windowMs: 300 } });
    await (await getDetections(sim, "action=list")).text();
    const blocked = await getDetections(sim, "action=list");
    await blocked.text();
    await Bun.sleep(350);
    const again = await getDetections(sim, "action=list");
    await again.text();
    expect(blocked.status).toBe(409);
    expect(again.status).toBe(200);
  });

  test("call over concurrency gets 409 1960", async () => {
    const sim = await pool.start({
      concurrencyLimit: 1,
      faults: { slowRate: 1, slowMs: 400 },
    });
    const running = getDetections(sim, "action=list");
    await Bun.sleep(100);
    const response = await getDetections(sim, "action=list");
    const body = await response.text();
    await (await running).text();
    expect(response.status).toBe(409);
    expect(elementTexts(body, "CODE")).toEqual(["1960"]);
    expect(elementTexts(body, "KEY")).toEqual(["CALLS_TO_FINISH"]);
    expect(elementTexts(body, "VALUE")).toEqual(["1"]);
    expect(response.headers.get("x-concurrency-limit-running")).toBe("1");
  });

  test("concurrency error takes precedence over rate", async () => {
    const sim = await pool.start({
      concurrencyLimit: 1,
      rateLimit: { requests: 1, windowMs: 60_000 },
      faults: { slowRate: 1, slowMs: 400 },
    });
    const running = getDetections(sim, "action=list");
    await Bun.sleep(100);
    const response = await getDetections(sim, "action=list");
    const body = await response.text();
    await (await running).text();
    expect(elementTexts(body, "CODE")).toEqual(["1960"]);
  });

  test("quota auditor counts every API call at arrival", async () => {
    const sim = await pool.start({
      rateLimit: { requests: 2, windowMs: 60_000 },
    });
    for (let i = 0; i < 3; i++)
      await (await getDetections(sim, "action=list")).text();
    await (await getDetections(sim, "action=list", {})).text();
    await (await fetch(`${sim.url}/_sim/counters`)).text();
    const counters = sim.counters();
    expect(counters.quota.requests).toBe(4);
    expect(counters.quota.windowsExceeded).toBe(2);
    expect(counters.requestsByStatus).toEqual({ "200": 2, "409": 1, "401": 1 });
  });
});

describe("qualys simulator faults", () => {
  test("server error gives 503 and no ground truth", async () => {
    const sim = await pool.start({ faults: { serverErrorRate: 1 } });
    const response = await getDetections(sim, "action=list");
    await response.text();
    expect(response.status).toBe(503);
    expect(sim.groundTruth()).toEqual([]);
    expect(sim.counters().faultsInjected).toEqual({ serverError: 1 });
  });

  test("reset closes the connection mid-body", async () => {
    const sim = await pool.start({ assets: 40, faults: { resetRate: 1 } });
    const response = await getDetections(sim, "action=list");
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    await Bun.sleep(50);
    expect(sim.groundTruth()).toEqual([]);
  });

  test("truncate ends a 200 body before the root closes", async () => {
    const sim = await pool.start({ faults: { truncateRate: 1 } });
    const response = await getDetections(sim, "action=list");
    const body = await response.text();
    expect(response.status).toBe(200);
    expect(body).not.toContain("</HOST_LIST_VM_DETECTION_OUTPUT>");
    expect(sim.groundTruth()).toEqual([]);
  });

  test("malformed gives a 200 with a broken tag", async () => {
    const sim = await pool.start({ faults: { malformedRate: 1 } });
    const body = await (await getDetections(sim, "action=list")).text();
    expect(body).toMatch(/<\/[A-Z_]+_BROKEN>/);
    expect(sim.groundTruth()).toEqual([]);
  });

  test("throttle fault answers 409 1960 or 1965", async () => {
    const sim = await pool.start({ faults: { throttleRate: 1 } });
    const codes = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const response = await getDetections(sim, "action=list");
      const body = await response.text();
      expect(response.status).toBe(409);
      codes.add(elementTexts(body, "CODE")[0] as string);
    }
    expect(codes).toEqual(new Set(["1960", "1965"]));
  });

  test("slow fault delays the answer", async () => {
    const sim = await pool.start({ faults: { slowRate: 1, slowMs: 300 } });
    const startedAt = performance.now();
    await (await getDetections(sim, "action=list")).text();
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(290);
    expect(sim.counters().faultsInjected).toEqual({ slow: 1 });
  });

  test("faults can be set over the admin route", async () => {
    const sim = await pool.start();
    const bad = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ noSuchFault: 1 }),
    });
    await bad.text();
    const good = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ serverErrorRate: 1 }),
    });
    await good.text();
    const response = await getDetections(sim, "action=list");
    await response.text();
    expect(bad.status).toBe(400);
    expect(good.status).toBe(200);
    expect(response.status).toBe(503);
  });
});

describe("qualys simulator ground truth", () => {
  test("clean pages add every served detection", async () => {
    const sim = await pool.start({ assets: 20 });
    const pages = await readAllPages(
      sim,
      "action=list&truncation_limit=6&show_igs=1",
    );
    const detections = pages.flatMap((xml) => elementTexts(xml, "QID"));
    const admin = (await (
      await fetch(`${sim.url}/_sim/ground-truth`)
    ).json()) as {
      vendor: string;
      served: unknown[];
    };
    expect(sim.groundTruth().length).toBe(detections.length);
    expect(detections.length).toBe(sim.counters().findings);
    expect(admin.vendor).toBe("qualys");
    expect(admin.served.length).toBe(detections.length);
  });

  test("same seed gives the same pages", async () => {
    const first = await pool.start({ seed: 5 });
    const second = await pool.start({ seed: 5 });
    const other = await pool.start({ seed: 6 });
    const normalise = (xml: string, url: string) =>
      xml.replaceAll(url, "").replace(/<DATETIME>.*<\/DATETIME>/, "");
    const read = async (sim: typeof first) =>
      normalise(
        await (await getDetections(sim, "action=list&show_igs=1")).text(),
        sim.url,
      );
    const [a, b, c] = [
      await read(first),
      await read(second),
      await read(other),
    ];
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(first.groundTruth()).toEqual(second.groundTruth());
  });

  test("advance changes statuses and processing times", async () => {
    const sim = await pool.start({ assets: 40, findingsPerAsset: 10 });
    const before = Date.now() - 1000;
    const advanced = await (
      await fetch(`${sim.url}/_sim/advance`, { method: "POST" })
    ).json();
    const since = new Date(before).toISOString().replace(/\.\d{3}Z$/, "Z");
    const xml = await (
      await getDetections(
        sim,
        `action=list&show_igs=1&detection_processed_after=${since}`,
      )
    ).text();
    const statuses = elementTexts(xml, "STATUS");
    expect(advanced).toEqual({ epoch: 1 });
    expect(statuses).toContain("Fixed");
    expect(statuses).toContain("Re-Opened");
    expect(statuses.length).toBeLessThan(sim.counters().findings / 2);
    expect(elementTexts(xml, "LAST_FIXED_DATETIME").length).toBeGreaterThan(0);
  });

  test("large findings have RESULTS over 100 KB", async () => {
    const sim = await pool.start({
      assets: 2,
      findingsPerAsset: 2,
      largeFindingRate: 1,
    });
    const xml = await (
      await getDetections(sim, "action=list&show_igs=1")
    ).text();
    const sizes = elementTexts(xml, "RESULTS").map((text) => text.length);
    expect(sizes.length).toBe(4);
    expect(Math.min(...sizes)).toBeGreaterThan(100 * 1024 - 200);
  });
});
