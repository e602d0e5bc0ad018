import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  VendorHttpError,
  errorCodeOf,
  type FindingEnvelope,
} from "@vulnsub/shared";
import type { VendorRequest } from "../src/adapter.ts";
import { createRapid7Adapter } from "../src/adapters/rapid7.ts";
import { createLogCapture } from "./helpers/log-capture.ts";
import {
  collectSync,
  createEnvelopeValidator,
  createFixtureHttp,
  createSyncContext,
  jsonResponse,
} from "./helpers/rapid7-http.ts";

const FIXTURES = resolve(import.meta.dir, "fixtures/rapid7");
const PAGE_2_CURSOR =
  "-884213377:::_S:::0f3a9c52-7d1e-4b6a-9e21-5c8d44aa1b07-default-asset-7";
const PAGE_3_CURSOR =
  "-884213377:::_S:::0f3a9c52-7d1e-4b6a-9e21-5c8d44aa1b07-default-asset-9";
const NOW = new Date("2025-06-01T06:00:00.000Z");

const fixture = (name: string) => readFileSync(resolve(FIXTURES, name), "utf8");

/** Serves page 1, then `second` for page 2, then the empty page. */
function fixtureHttp(
  first = "assets-page-1.json",
  second = "assets-page-2.json",
) {
  return createFixtureHttp((request: VendorRequest, url: URL) => {
    if (request.operation === "vulnerabilities") {
      return jsonResponse(fixture("vulnerabilities.json"));
    }
    const cursor = url.searchParams.get("cursor");
    if (cursor === null) return jsonResponse(fixture(first));
    if (cursor === PAGE_2_CURSOR) return jsonResponse(fixture(second));
    if (cursor === PAGE_3_CURSOR)
      return jsonResponse(fixture("assets-empty.json"));
    throw new Error(`unexpected cursor ${cursor}`);
  });
}

function context(
  http: ReturnType<typeof fixtureHttp>["http"],
  maxBatchRecords = 4,
) {
  const logs = createLogCapture();
  return createSyncContext(http, logs.logger, {
    now: () => NOW,
    maxBatchRecords,
    backfillStart: new Date("2025-05-01T00:00:00.000Z"),
  });
}

const adapter = () => createRapid7Adapter({ pageSize: 2 });

function envelopes(outcome: Awaited<ReturnType<typeof collectSync>>) {
  return outcome.batches.flatMap((batch) =>
    batch.records.map((record) => JSON.parse(record.json) as FindingEnvelope),
  );
}

describe("rapid7 adapter on fixtures", () => {
  test("two pages map every finding", async () => {
    const { http, requests } = fixtureHttp();
    const outcome = await collectSync(adapter(), null, context(http));
    expect(outcome.error).toBeUndefined();

    const lines = envelopes(outcome);
    expect(lines.length).toBe(7);
    const validate = createEnvelopeValidator();
    for (const batch of outcome.batches) {
      for (const record of batch.records)
        expect(validate(record.json)).toBeNull();
    }
    expect(new Set(lines.map((line) => line.findingKey)).size).toBe(7);

    const sizes = outcome.batches.map((batch) => batch.records.length);
    expect(sizes).toEqual([4, 2, 1, 0]);
    const withCursor = outcome.batches.map(
      (batch) => batch.cursor !== undefined,
    );
    expect(withCursor).toEqual([false, true, true, true]);
    expect(JSON.parse(outcome.cursor as string)).toEqual({
      formatVersion: 1,
      watermark: NOW.toISOString(),
      cycle: null,
    });

    const lookups = requests.filter(
      (item) => item.operation === "vulnerabilities",
    );
    expect(lookups.length).toBe(2);
  });

  test("states follow the lists", async () => {
    const { http } = fixtureHttp();
    const lines = envelopes(await collectSync(adapter(), null, context(http)));
    const byVulnerability = (id: string) =>
      lines.filter((line) => line.vulnerability.id === id);

    const reopened = byVulnerability("postgresql-cve-2021-32027")[0];
    expect(reopened?.state).toBe("reopened");
    expect(reopened?.vendorState).toBe("VULNERABLE_VERS");
    expect(reopened?.lastFixed).toBeNull();
    expect(byVulnerability("linux-grub-missing-passwd")[0]?.state).toBe("open");

    const fixed = byVulnerability("certificate-common-name-mismatch")[0];
    expect(fixed?.state).toBe("fixed");
    expect(fixed?.lastFixed).toBe("2025-05-30T08:15:02.120Z");
    expect(fixed?.lastSeen).toBe("2025-05-23T08:12:11.900Z");
    expect(fixed?.port).toBe(443);
    expect(fixed?.protocol).toBe("TCP");
  });

  test("definitions enrich title, CVEs and severity", async () => {
    const { http } = fixtureHttp();
    const lines = envelopes(await collectSync(adapter(), null, context(http)));
    const log4j = lines.filter(
      (line) => line.vulnerability.id === "apache-log4j-core-cve-2021-44228",
    );
    expect(log4j.length).toBe(2);
    expect(log4j[0]?.vulnerability.cves).toEqual([
      "CVE-2021-44228",
      "CVE-2021-45046",
    ]);
    expect(log4j[0]?.vulnerability.severity).toBe("critical");
    expect(log4j[0]?.findingKey).not.toBe(log4j[1]?.findingKey);

    const grub = lines.find(
      (line) => line.vulnerability.id === "linux-grub-missing-passwd",
    );
    expect(grub?.vulnerability.severity).toBe("high");
    expect(grub?.vulnerability.cves).toEqual([]);
    const ntp = lines.find(
      (line) => line.vulnerability.id === "ntp-clock-variables-disclosure",
    );
    expect(ntp?.vulnerability.severity).toBe("medium");
    expect(ntp?.vulnerability.vendorSeverity).toBe("moderate");
  });

  test("missing definition keeps the finding", async () => {
    const { http } = fixtureHttp();
    const lines = envelopes(await collectSync(adapter(), null, context(http)));
    const retired = lines.find(
      (line) => line.vulnerability.id === "retired-vulnerability-0001",
    );
    expect(retired?.vulnerability.title).toBeNull();
    expect(retired?.vulnerability.severity).toBe("high");
    expect(retired?.vulnerability.vendorSeverity).toBe("Severe");
    expect(retired?.vulnerability.cves).toEqual([]);
  });

  test("asset fields and raw objects", async () => {
    const { http } = fixtureHttp();
    const lines = envelopes(await collectSync(adapter(), null, context(http)));
    const db = lines.find((line) => line.asset.id.endsWith("-asset-3"));
    expect(db?.asset.hostname).toBe("db-01.corp.example");
    expect(db?.asset.fqdn).toBe("db-01.corp.example");
    expect(db?.asset.ipv4).toEqual(["10.20.30.40"]);

    const pc = lines.find((line) => line.asset.id.endsWith("-asset-7"));
    expect(pc?.asset.hostname).toBe("Kassenbüro-PC");
    expect(pc?.asset.fqdn).toBeNull();
    expect(pc?.asset.ipv4).toEqual([]);
    expect(pc?.asset.ipv6).toEqual(["2001:db8:7::15"]);

    const raw = pc?.raw as Record<string, Record<string, unknown>>;
    expect(raw.list as unknown).toBe("same");
    expect(raw.asset?.same).toBeUndefined();
    expect(raw.asset?.new).toBeUndefined();
    expect(raw.asset?.host_name).toBe("Kassenbüro-PC");
    expect(raw.finding?.check_id).toBe("retired-check-0001");
  });

  test("empty first page ends the cycle", async () => {
    const { http } = fixtureHttp("assets-empty.json");
    const outcome = await collectSync(adapter(), null, context(http));
    expect(outcome.error).toBeUndefined();
    expect(outcome.batches.length).toBe(1);
    expect(outcome.batches[0]?.records).toEqual([]);
    expect(JSON.parse(outcome.cursor as string).watermark).toBe(
      NOW.toISOString(),
    );
  });

  test("zero findings give zero records", async () => {
    const { http, requests } = fixtureHttp("assets-zero-findings.json");
    const outcome = await collectSync(adapter(), null, context(http));
    expect(outcome.error).toBeUndefined();
    expect(envelopes(outcome)).toEqual([]);
    expect(JSON.parse(outcome.cursor as string).cycle).toBeNull();
    expect(requests.some((item) => item.operation === "vulnerabilities")).toBe(
      false,
    );
  });
});

describe("rapid7 adapter definition lookups", () => {
  test("rejected lookup keeps the findings", async () => {
    const { http } = createFixtureHttp((request, url) => {
      if (request.operation === "vulnerabilities") {
        throw new VendorHttpError("rapid7 vulnerabilities: HTTP 400", 400);
      }
      const cursor = url.searchParams.get("cursor");
      const name = cursor === null ? "assets-page-1.json" : "assets-empty.json";
      return jsonResponse(fixture(name));
    });
    const logs = createLogCapture();
    const outcome = await collectSync(
      adapter(),
      null,
      createSyncContext(http, logs.logger, { now: () => NOW }),
    );
    expect(outcome.error).toBeUndefined();
    const lines = envelopes(outcome);
    expect(lines.length).toBe(6);
    expect(lines.every((line) => line.vulnerability.title === null)).toBe(true);
    expect(logs.events("definitions.rejected").length).toBe(1);
  });

  test("other lookup failures abort the cycle", async () => {
    const { http } = createFixtureHttp((request) => {
      if (request.operation === "vulnerabilities") {
        return jsonResponse('{"data": 5}');
      }
      return jsonResponse(fixture("assets-page-1.json"));
    });
    const outcome = await collectSync(adapter(), null, context(http));
    expect(errorCodeOf(outcome.error)).toBe("vendor_response_invalid");
    expect((outcome.error as Error).message).toContain(
      "rapid7 vulnerabilities",
    );
    expect(outcome.batches).toEqual([]);
  });
});

describe("rapid7 adapter rejects bad pages", () => {
  const cases: [string, string][] = [
    ["assets-data-not-array.json", "data: expected an array"],
    ["assets-cursor-number.json", "metadata.cursor: expected a string"],
    ["assets-port-string.json", "data[0].new[0].port: expected an integer"],
    ["assets-truncated.txt", "not valid JSON"],
    ["assets-malformed.txt", "not valid JSON"],
    ["console-v3-page.json", "Security Console API v3"],
  ];
  for (const [name, problem] of cases) {
    test(`page 2 from ${name}`, async () => {
      const { http } = fixtureHttp("assets-page-1.json", name);
      const outcome = await collectSync(adapter(), null, context(http));
      const error = outcome.error as Error;
      expect(errorCodeOf(error)).toBe("vendor_response_invalid");
      expect(error.message).toContain("rapid7 assets page 2");
      expect(error.message).toContain(problem);
      // Page 1 was yielded in full; nothing from page 2.
      expect(envelopes(outcome).length).toBe(6);
      expect(outcome.batches.every((batch) => batch.page === 1)).toBe(true);
      const saved = JSON.parse(outcome.cursor as string);
      expect(saved.cycle.apiCursor).toBe(PAGE_2_CURSOR);
      expect(saved.cycle.page).toBe(2);
    });
  }

  test("body over the limit", async () => {
    const { http } = fixtureHttp();
    const small = createRapid7Adapter({ pageSize: 2, maxBodyBytes: 1000 });
    const outcome = await collectSync(small, null, context(http));
    expect(errorCodeOf(outcome.error)).toBe("vendor_response_invalid");
    expect((outcome.error as Error).message).toContain("limit of 1000 bytes");
    expect(outcome.batches).toEqual([]);
  });

  test("connection lost mid-body", async () => {
    const { http } = createFixtureHttp(() => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"data":[{"id":'));
          controller.error(new Error("socket hang up"));
        },
      });
      return new Response(body, { status: 200 });
    });
    const outcome = await collectSync(adapter(), null, context(http));
    expect(errorCodeOf(outcome.error)).toBe("vendor_request_failed");
    expect((outcome.error as Error).message).toContain(
      "reading the body failed",
    );
    expect(outcome.batches).toEqual([]);
  });

  test("400 in a fresh cycle is not retried", async () => {
    const { http } = createFixtureHttp(() => {
      throw new VendorHttpError("rapid7 assets POST: HTTP 400: bad", 400);
    });
    const outcome = await collectSync(adapter(), null, context(http));
    expect(errorCodeOf(outcome.error)).toBe("vendor_http_status");
  });
});

describe("rapid7 adapter requests", () => {
  test("incremental cycle sends the differential", async () => {
    const { http, requests } = fixtureHttp("assets-empty.json");
    const cursor = JSON.stringify({
      formatVersion: 1,
      watermark: "2025-06-01T00:00:00.000Z",
      cycle: null,
    });
    const outcome = await collectSync(adapter(), cursor, context(http));
    expect(outcome.error).toBeUndefined();
    const url = new URL(requests[0]?.url ?? "", "https://rapid7.invalid/");
    expect(url.pathname).toBe("/vm/v4/integration/assets");
    expect(url.searchParams.get("comparisonTime")).toBe(
      "2025-05-31T23:55:00.000Z",
    );
    expect(url.searchParams.get("currentTime")).toBe(NOW.toISOString());
    expect(url.searchParams.get("includeSame")).toBeNull();
    expect(url.searchParams.get("size")).toBe("2");
    expect(requests[0]?.body).toBe("{}");
  });

  test("backfill sends includeSame and criteria", async () => {
    const { http, requests } = fixtureHttp("assets-empty.json");
    await collectSync(adapter(), null, context(http));
    const url = new URL(requests[0]?.url ?? "", "https://rapid7.invalid/");
    expect(url.searchParams.get("includeSame")).toBe("true");
    expect(url.searchParams.get("comparisonTime")).toBeNull();
    expect(JSON.parse(requests[0]?.body ?? "")).toEqual({
      asset: "last_scan_end > 2025-05-01T00:00:00.000Z",
    });
  });

  test("resumed cycle sends the saved cursor", async () => {
    const { http, requests } = fixtureHttp();
    const cursor = JSON.stringify({
      formatVersion: 1,
      watermark: null,
      cycle: {
        mode: "backfill",
        startedAt: "2025-06-01T05:00:00.000Z",
        since: "2025-05-01T00:00:00.000Z",
        apiCursor: PAGE_2_CURSOR,
        page: 2,
      },
    });
    const outcome = await collectSync(adapter(), cursor, context(http));
    expect(outcome.error).toBeUndefined();
    const url = new URL(requests[0]?.url ?? "", "https://rapid7.invalid/");
    expect(url.searchParams.get("cursor")).toBe(PAGE_2_CURSOR);
    expect(envelopes(outcome).length).toBe(1);
    expect(JSON.parse(outcome.cursor as string).watermark).toBe(
      "2025-06-01T05:00:00.000Z",
    );
  });
});
