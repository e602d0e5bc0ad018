import { afterEach, describe, expect, test } from "bun:test";
import {
  AUTH_HEADERS,
  DETECTION_PATH,
  createSimulatorPool,
  elementTexts,
  getDetections,
  hostBlocks,
  readAllPages,
  warningUrl,
} from "./qualys-helpers.ts";

const pool = createSimulatorPool();
afterEach(() => pool.stopAll());

describe("qualys simulator auth and headers", () => {
  test("bad password gets 401 Bad Login/Password", async () => {
    const sim = await pool.start();
    const response = await getDetections(sim, "action=list", {
      authorization: `Basic ${btoa("demo:wrong")}`,
      "x-requested-with": "test",
    });
    const body = await response.text();
    expect(response.status).toBe(401);
    expect(body).toContain("<SIMPLE_RETURN>");
    expect(elementTexts(body, "TEXT")).toEqual(["Bad Login/Password"]);
  });

  test("missing X-Requested-With gets 400", async () => {
    const sim = await pool.start();
    const response = await getDetections(sim, "action=list", {
      authorization: AUTH_HEADERS.authorization,
    });
    const body = await response.text();
    expect(response.status).toBe(400);
    expect(elementTexts(body, "CODE")).toEqual(["1903"]);
  });

  test("every answer carries limit headers", async () => {
    const sim = await pool.start();
    const ok = await getDetections(sim, "action=list");
    await ok.text();
    const bad = await getDetections(sim, "action=list", {});
    await bad.text();
    for (const response of [ok, bad]) {
      expect(response.headers.get("x-ratelimit-limit")).toBe("300");
      expect(response.headers.get("x-ratelimit-window-sec")).toBe("3600");
      expect(response.headers.get("x-ratelimit-towait-sec")).toBe("0");
      expect(response.headers.get("x-concurrency-limit-limit")).toBe("2");
      expect(
        response.headers.get("x-concurrency-limit-running"),
      ).not.toBeNull();
      expect(response.headers.get("x-ratelimit-remaining")).not.toBeNull();
    }
    expect(ok.headers.get("x-ratelimit-remaining")).toBe("299");
  });

  test("unknown admin route is 404 and not counted", async () => {
    const sim = await pool.start();
    const response = await fetch(`${sim.url}/_sim/nothing`);
    await response.text();
    expect(response.status).toBe(404);
    expect(sim.counters().quota.requests).toBe(0);
  });
});

describe("qualys simulator parameters", () => {
  test("unknown parameter gets 1901", async () => {
    const sim = await pool.start();
    const response = await getDetections(sim, "action=list&colour=blue");
    const body = await response.text();
    expect(response.status).toBe(400);
    expect(elementTexts(body, "CODE")).toEqual(["1901"]);
    expect(body).toContain("colour");
  });

  test("invalid ids value gets 1905", async () => {
    const sim = await pool.start();
    const response = await getDetections(sim, "action=list&ids=abc123");
    const body = await response.text();
    expect(response.status).toBe(400);
    expect(elementTexts(body, "CODE")).toEqual(["1905"]);
    expect(elementTexts(body, "TEXT")[0]).toStartWith(
      "parameter ids has invalid value: abc123",
    );
  });

  test("invalid status and date get 1905", async () => {
    const sim = await pool.start();
    for (const query of [
      "action=list&status=Open",
      "action=list&detection_processed_after=yesterday",
      "action=list&truncation_limit=0",
      "action=list&show_igs=yes",
    ]) {
      const response = await getDetections(sim, query);
      const body = await response.text();
      expect(response.status).toBe(400);
      expect(elementTexts(body, "CODE")).toEqual(["1905"]);
    }
  });

  test("missing action gets 1903", async () => {
    const sim = await pool.start();
    const response = await getDetections(sim, "truncation_limit=5");
    const body = await response.text();
    expect(response.status).toBe(400);
    expect(elementTexts(body, "CODE")).toEqual(["1903"]);
  });

  test("form POST equals GET", async () => {
    const sim = await pool.start();
    const query = "action=list&truncation_limit=3&show_igs=1";
    const viaGet = await (await getDetections(sim, query)).text();
    const viaPost = await (
      await fetch(`${sim.url}${DETECTION_PATH}`, {
        method: "POST",
        headers: {
          ...AUTH_HEADERS,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: query,
      })
    ).text();
    const withoutTime = (xml: string) =>
      xml.replace(/<DATETIME>.*<\/DATETIME>/, "");
    expect(withoutTime(viaPost)).toBe(withoutTime(viaGet));
  });

  test("api versions 3.0 to 5.0 answer", async () => {
    const sim = await pool.start();
    for (const version of ["3.0", "4.0", "5.0"]) {
      const response = await fetch(
        `${sim.url}/api/${version}/fo/asset/host/vm/detection/?action=list`,
        { headers: AUTH_HEADERS },
      );
      await response.text();
      expect(response.status).toBe(200);
    }
  });
});

describe("qualys simulator paging", () => {
  test("pages hold truncation_limit hosts in ID order", async () => {
    const sim = await pool.start({ assets: 23 });
    const pages = await readAllPages(
      sim,
      "action=list&truncation_limit=5&show_igs=1",
    );
    const ids = pages.flatMap((xml) =>
      hostBlocks(xml).map((host) => Number(elementTexts(host, "ID")[0])),
    );
    expect(pages.length).toBe(5);
    expect(pages.map((xml) => hostBlocks(xml).length)).toEqual([5, 5, 5, 5, 3]);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(23);
  });

  test("WARNING 1980 URL repeats params with next id_min", async () => {
    const sim = await pool.start({ assets: 8 });
    const first = await (
      await getDetections(sim, "action=list&truncation_limit=3&show_igs=1")
    ).text();
    const second = await (
      await getDetections(sim, "action=list&truncation_limit=10&show_igs=1")
    ).text();
    const url = new URL(warningUrl(first) as string);
    const allIds = hostBlocks(second).map(
      (host) => elementTexts(host, "ID")[0],
    );
    expect(elementTexts(first, "CODE")).toContain("1980");
    expect(url.origin).toBe(sim.url);
    expect(url.pathname).toBe(DETECTION_PATH);
    expect(url.searchParams.get("truncation_limit")).toBe("3");
    expect(url.searchParams.get("show_igs")).toBe("1");
    expect(url.searchParams.get("id_min")).toBe(allIds[3] as string);
  });

  test("last page has no WARNING", async () => {
    const sim = await pool.start({ assets: 4 });
    const xml = await (
      await getDetections(sim, "action=list&show_igs=1")
    ).text();
    expect(warningUrl(xml)).toBeNull();
    expect(xml).toStartWith('<?xml version="1.0" encoding="UTF-8" ?>');
    expect(xml).toContain("<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM");
    expect(xml.trimEnd()).toEndWith("</HOST_LIST_VM_DETECTION_OUTPUT>");
  });

  test("no matching detection gives an empty page", async () => {
    const sim = await pool.start();
    const xml = await (
      await getDetections(
        sim,
        "action=list&detection_processed_after=2099-01-01",
      )
    ).text();
    expect(hostBlocks(xml)).toEqual([]);
    expect(xml).not.toContain("<HOST_LIST>");
    expect(warningUrl(xml)).toBeNull();
  });
});

describe("qualys simulator filters", () => {
  test("status filter keeps only that status", async () => {
    const sim = await pool.start({ assets: 30 });
    const xml = await (
      await getDetections(sim, "action=list&status=Fixed")
    ).text();
    const statuses = elementTexts(xml, "STATUS");
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set(["Fixed"]));
  });

  test("Info detections only with show_igs=1", async () => {
    const sim = await pool.start({ assets: 30 });
    const without = await (await getDetections(sim, "action=list")).text();
    const withIgs = await (
      await getDetections(sim, "action=list&show_igs=1")
    ).text();
    expect(elementTexts(without, "TYPE")).not.toContain("Info");
    expect(elementTexts(withIgs, "TYPE")).toContain("Info");
  });

  test("severities filter keeps those levels", async () => {
    const sim = await pool.start({ assets: 30 });
    const xml = await (
      await getDetections(sim, "action=list&severities=4-5")
    ).text();
    const levels = new Set(elementTexts(xml, "SEVERITY"));
    expect(levels).toEqual(new Set(["4", "5"]));
  });

  test("show_results=0 leaves RESULTS out", async () => {
    const sim = await pool.start();
    const xml = await (
      await getDetections(sim, "action=list&show_results=0")
    ).text();
    expect(xml).not.toContain("<RESULTS>");
  });

  test("show_qds=1 adds QDS to some detections", async () => {
    const sim = await pool.start({ assets: 30 });
    const plain = await (await getDetections(sim, "action=list")).text();
    const scored = await (
      await getDetections(sim, "action=list&show_qds=1&show_qds_factors=1")
    ).text();
    expect(plain).not.toContain("<QDS ");
    expect(scored).toMatch(
      /<QDS severity="(LOW|MEDIUM|HIGH|CRITICAL)">\d+<\/QDS>/,
    );
    expect(scored).toContain('<QDS_FACTOR name="CVSS">');
  });

  test("detection_processed_after keeps later detections", async () => {
    const sim = await pool.start({ assets: 30 });
    const cutoff = "2024-01-10T00:00:00Z";
    const xml = await (
      await getDetections(
        sim,
        `action=list&show_igs=1&detection_processed_after=${cutoff}`,
      )
    ).text();
    const processed = elementTexts(xml, "LAST_PROCESSED_DATETIME");
    expect(processed.length).toBeGreaterThan(0);
    expect(
      processed.every((time) => Date.parse(time) > Date.parse(cutoff)),
    ).toBe(true);
  });

  test("optional host elements are sometimes missing", async () => {
    const sim = await pool.start({ assets: 40 });
    const hosts = hostBlocks(
      await (await getDetections(sim, "action=list&show_igs=1")).text(),
    );
    const share = (name: string) =>
      hosts.filter((host) => host.includes(`<${name}>`)).length;
    for (const name of ["IP", "DNS", "DNS_DATA", "NETBIOS", "OS"]) {
      expect(share(name)).toBeGreaterThan(0);
      expect(share(name)).toBeLessThan(hosts.length);
    }
  });

  test("hostnames include non-ASCII labels", async () => {
    const sim = await pool.start({ assets: 16 });
    const xml = await (
      await getDetections(sim, "action=list&show_igs=1")
    ).text();
    expect(xml).toMatch(/ñandú-\d+/);
    expect(xml).toMatch(/サーバー-\d+/);
  });
});
