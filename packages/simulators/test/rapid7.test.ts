import { afterEach, describe, expect, test } from "bun:test";
import {
  startRapid7Simulator,
  type Rapid7SimulatorOptions,
  type Rapid7SimulatorHandle as SimulatorHandle,
} from "../src/rapid7.ts";

const START = new Date("2025-06-01T12:00:00.000Z");
const KEY = "demo-rapid7-key";
const ASSETS = "/vm/v4/integration/assets";
const VULNERABILITIES = "/vm/v4/integration/vulnerabilities";

const running: SimulatorHandle[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.stop()));
});

async function start(overrides: Partial<Rapid7SimulatorOptions> = {}) {
  let nowMs = START.getTime() + 60_000;
  const clock = {
    now: () => new Date(nowMs),
    advance: (ms: number) => {
      nowMs += ms;
    },
  };
  const sim = await startRapid7Simulator({
    seed: 11,
    assets: 30,
    findingsPerAsset: 6,
    rateLimit: { requests: 10_000, windowMs: 60_000 },
    startTime: START,
    now: clock.now,
    ...overrides,
  });
  running.push(sim);
  return { sim, clock };
}

function post(
  sim: SimulatorHandle,
  path: string,
  body: unknown = {},
  headers: Record<string, string> = {},
) {
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: {
      "X-Api-Key": KEY,
      "Content-Type": "application/json",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

interface Page {
  data: Record<string, unknown>[];
  metadata: { cursor?: string | null; totalResources: number; size: number };
}

async function readAllAssets(sim: SimulatorHandle, query: string, body = {}) {
  const assets: Record<string, unknown>[] = [];
  const cursors: (string | null | undefined)[] = [];
  let cursor: string | null | undefined = null;
  for (let n = 0; n < 100; n++) {
    const suffix = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const response = await post(sim, `${ASSETS}?${query}${suffix}`, body);
    expect(response.status).toBe(200);
    const page = (await response.json()) as Page;
    cursors.push(page.metadata.cursor);
    assets.push(...page.data);
    cursor = page.metadata.cursor;
    if (!cursor || page.data.length === 0) break;
  }
  return { assets, cursors };
}

type Finding = Record<string, unknown>;
const findingsOf = (asset: Record<string, unknown>, list: string) =>
  (asset[list] ?? []) as Finding[];

describe("rapid7 simulator auth", () => {
  test("missing key gives 401", async () => {
    const { sim } = await start();
    const response = await fetch(`${sim.url}${ASSETS}`, { method: "POST" });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ message: "Unauthorized" });
  });

  test("wrong key gives 401", async () => {
    const { sim } = await start();
    const response = await post(sim, ASSETS, {}, { "X-Api-Key": "nope" });
    expect(response.status).toBe(401);
  });

  test("validate route accepts the key", async () => {
    const { sim } = await start();
    const response = await fetch(`${sim.url}/validate`, {
      headers: { "X-Api-Key": KEY },
    });
    expect(await response.json()).toEqual({ message: "Authorized" });
  });
});

describe("rapid7 simulator asset paging", () => {
  test("cursor paging returns every asset once", async () => {
    const { sim } = await start();
    const { assets, cursors } = await readAllAssets(
      sim,
      "size=7&includeSame=true",
    );
    const ids = assets.map((asset) => asset.id as string);
    expect(ids.length).toBe(30);
    expect(new Set(ids).size).toBe(30);
    expect(ids).toEqual([...ids].sort());
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f-]{36}-default-asset-\d+$/);
    // Five pages with data carry a cursor; the sixth is empty with null.
    expect(cursors.length).toBe(6);
    expect(cursors[5]).toBeNull();
    expect(cursors[4]).toMatch(/^-?\d+:::_S:::.+-default-asset-\d+$/);
  });

  test("size over the maximum gives 400", async () => {
    const { sim } = await start();
    const response = await post(sim, `${ASSETS}?size=501`);
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status).toBe(400);
    expect(body._type).toBe(
      "com.rapid7.spring.rest.error.resource.ErrorResource",
    );
    expect(body.message).toContain("500");
  });

  test("invalid asset criteria gives 400", async () => {
    const { sim } = await start();
    const response = await post(sim, ASSETS, {
      asset: "invalid asset criteria",
    });
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status).toBe(400);
    expect(body.message).toContain("Unable to parse query");
  });

  test("cursor of another search gives 400", async () => {
    const { sim } = await start();
    const first = (await (await post(sim, `${ASSETS}?size=5`)).json()) as Page;
    const cursor = encodeURIComponent(first.metadata.cursor as string);
    const other = `${ASSETS}?size=5&includeSame=true&cursor=${cursor}`;
    expect((await post(sim, other)).status).toBe(400);
  });

  test("wrong content type gives 415", async () => {
    const { sim } = await start();
    const response = await post(
      sim,
      ASSETS,
      {},
      { "Content-Type": "text/plain" },
    );
    expect(response.status).toBe(415);
  });

  test("last_scan_end criteria filters assets", async () => {
    const { sim } = await start();
    const since = new Date(START.getTime() - 24 * 3_600_000).toISOString();
    const { assets } = await readAllAssets(sim, "size=50", {
      asset: `last_scan_end > ${since}`,
    });
    expect(assets.length).toBeGreaterThan(0);
    expect(assets.length).toBeLessThan(30);
    for (const asset of assets) {
      expect(Date.parse(asset.last_scan_end as string)).toBeGreaterThan(
        Date.parse(since),
      );
    }
  });

  test("dataset has odd hosts and duplicate keys", async () => {
    const { sim } = await start({ assets: 60, findingsPerAsset: 8 });
    const { assets } = await readAllAssets(sim, "size=500&includeSame=true");
    const names = assets.map((asset) => asset.host_name);
    expect(names.some((name) => /[^\x00-\x7f]/.test(String(name)))).toBe(true);
    expect(assets.some((asset) => asset.ip === undefined)).toBe(true);
    const duplicated = assets.some((asset) => {
      const ids = findingsOf(asset, "same").map((f) => f.vulnerability_id);
      return new Set(ids).size < ids.length;
    });
    expect(duplicated).toBe(true);
  });

  test("large proofs reach 100 KB", async () => {
    const { sim } = await start({
      assets: 2,
      findingsPerAsset: 1,
      largeFindingRate: 1,
    });
    const { assets } = await readAllAssets(sim, "size=10&includeSame=true");
    for (const asset of assets) {
      const proof = findingsOf(asset, "same")[0]?.proof as string;
      expect(proof.length).toBeGreaterThanOrEqual(100_000);
      expect(proof.length).toBeLessThan(520_000);
    }
  });
});

describe("rapid7 simulator differential", () => {
  test("without comparisonTime every finding is same", async () => {
    const { sim } = await start();
    const { assets } = await readAllAssets(sim, "size=50&includeSame=true");
    const same = assets.flatMap((asset) => findingsOf(asset, "same"));
    expect(same.length).toBe(30 * 6);
    expect(assets.every((asset) => findingsOf(asset, "new").length === 0)).toBe(
      true,
    );
    expect(
      assets.every((asset) => findingsOf(asset, "remediated").length === 0),
    ).toBe(true);
  });

  test("advance yields new and remediated findings", async () => {
    const { sim, clock } = await start();
    const before = await readAllAssets(sim, "size=50&includeSame=true");
    const comparison = clock.now().toISOString();
    clock.advance(3_600_000);
    expect(sim.advanceEpoch()).toBe(1);
    clock.advance(60_000);

    const query = `size=50&comparisonTime=${comparison}`;
    const after = await readAllAssets(sim, query);
    const remediated = after.assets.flatMap((asset) =>
      findingsOf(asset, "remediated"),
    );
    const added = after.assets.flatMap((asset) => findingsOf(asset, "new"));
    expect(remediated.length).toBeGreaterThan(0);
    expect(added.length).toBeGreaterThan(0);
    expect(after.assets.every((asset) => asset.same === undefined)).toBe(true);

    const keyOf = (assetId: unknown, f: Finding) =>
      `${assetId} ${f.vulnerability_id} ${f.key} ${f.port} ${f.protocol}`;
    const open = new Set(
      before.assets.flatMap((asset) =>
        findingsOf(asset, "same").map((f) => keyOf(asset.id, f)),
      ),
    );
    for (const asset of after.assets) {
      for (const finding of findingsOf(asset, "remediated")) {
        expect(open.has(keyOf(asset.id, finding))).toBe(true);
      }
    }
  });

  test("includeSame with comparisonTime adds same", async () => {
    const { sim, clock } = await start();
    const comparison = clock.now().toISOString();
    clock.advance(3_600_000);
    sim.advanceEpoch();
    const query = `size=50&includeSame=true&comparisonTime=${comparison}`;
    const { assets } = await readAllAssets(sim, query);
    expect(assets.every((asset) => Array.isArray(asset.same))).toBe(true);
    expect(
      assets.flatMap((asset) => findingsOf(asset, "same")).length,
    ).toBeGreaterThan(0);
  });
});

describe("rapid7 simulator vulnerabilities", () => {
  test("id IN returns the known definitions", async () => {
    const { sim } = await start();
    const response = await post(sim, `${VULNERABILITIES}?size=10`, {
      vulnerability:
        "id IN ['certificate-common-name-mismatch', 'no-such-id', " +
        "'linux-grub-missing-passwd']",
    });
    const page = (await response.json()) as Page;
    const ids = page.data.map((item) => item.id);
    expect(ids).toEqual([
      "certificate-common-name-mismatch",
      "linux-grub-missing-passwd",
    ]);
    for (const item of page.data) {
      expect(["critical", "severe", "moderate"]).toContain(
        item.severity as string,
      );
      expect(typeof item.cves).toBe("string");
      expect(typeof item.title).toBe("string");
    }
  });

  test("cursor paging covers the catalogue", async () => {
    const { sim } = await start();
    const ids: string[] = [];
    let cursor: string | null | undefined = null;
    for (let n = 0; n < 200; n++) {
      const suffix = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const response = await post(sim, `${VULNERABILITIES}?size=25${suffix}`);
      const page = (await response.json()) as Page;
      ids.push(...page.data.map((item) => item.id as string));
      cursor = page.metadata.cursor;
      if (!cursor || page.data.length === 0) break;
    }
    expect(ids.length).toBeGreaterThan(50);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("rapid7 simulator determinism", () => {
  test("same seed serves the same bytes", async () => {
    const one = await start();
    const two = await start();
    const query = `${ASSETS}?size=20&includeSame=true`;
    const first = await (await post(one.sim, query)).text();
    const second = await (await post(two.sim, query)).text();
    expect(first.replaceAll(one.sim.url, "")).toBe(
      second.replaceAll(two.sim.url, ""),
    );

    one.clock.advance(3_600_000);
    two.clock.advance(3_600_000);
    one.sim.advanceEpoch();
    two.sim.advanceEpoch();
    const after = `${ASSETS}?size=20&comparisonTime=${START.toISOString()}`;
    const third = await (await post(one.sim, after)).text();
    const fourth = await (await post(two.sim, after)).text();
    expect(third.replaceAll(one.sim.url, "")).toBe(
      fourth.replaceAll(two.sim.url, ""),
    );
  });

  test("other seed serves other data", async () => {
    const one = await start();
    const two = await start({ seed: 12 });
    const query = `${ASSETS}?size=20&includeSame=true`;
    const first = (await (await post(one.sim, query)).json()) as Page;
    const second = (await (await post(two.sim, query)).json()) as Page;
    expect(first.data[0]?.id).not.toBe(second.data[0]?.id);
  });
});

describe("rapid7 simulator admin routes", () => {
  test("admin routes work without a key", async () => {
    const { sim } = await start();
    await post(sim, `${ASSETS}?size=5&includeSame=true`);
    const truth = (await (
      await fetch(`${sim.url}/_sim/ground-truth`)
    ).json()) as {
      vendor: string;
      served: unknown[];
    };
    expect(truth.vendor).toBe("rapid7");
    expect(truth.served.length).toBe(5 * 6);

    const advance = await fetch(`${sim.url}/_sim/advance`, { method: "POST" });
    expect(await advance.json()).toEqual({ epoch: 1 });

    const faults = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ slowRate: 0.5 }),
    });
    expect(faults.status).toBe(200);
    const bad = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      body: JSON.stringify({ noSuchFault: 1 }),
    });
    expect(bad.status).toBe(400);

    const counters = (await (
      await fetch(`${sim.url}/_sim/counters`)
    ).json()) as {
      quota: { requests: number };
      epoch: number;
    };
    expect(counters.quota.requests).toBe(1);
    expect(counters.epoch).toBe(1);
  });
});
