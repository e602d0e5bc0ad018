import { describe, expect, test } from "bun:test";
import {
  errorCodeOf,
  qualysFindingVersion,
  type FindingEnvelope,
} from "@vulnsub/shared";
import { createQualysAdapter } from "../src/adapters/qualys.ts";
import {
  FIXTURE_BASE_URL,
  chunkedStream,
  createEnvelopeValidator,
  createFixtureHttp,
  createTestContext,
  readQualysFixture,
  recordsOf,
  runCycle,
  type FixturePage,
} from "./helpers/qualys-http.ts";

const validateEnvelope = createEnvelopeValidator();

async function runFixture(
  pages: FixturePage[],
  options: {
    chunkBytes?: number;
    maxBatchRecords?: number;
    cursor?: string;
  } = {},
) {
  const http = createFixtureHttp(pages, { chunkBytes: options.chunkBytes });
  const adapter = createQualysAdapter({ baseUrl: FIXTURE_BASE_URL });
  const context = createTestContext(http, {
    maxBatchRecords: options.maxBatchRecords ?? 100,
  });
  const result = await runCycle(adapter, options.cursor ?? null, context);
  const envelopes = recordsOf(result.batches).map(
    (record) => JSON.parse(record.json) as FindingEnvelope,
  );
  return { ...result, http, envelopes };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

describe("qualys adapter on fixtures", () => {
  test("optional elements missing map to nulls", async () => {
    const { error, envelopes, batches } = await runFixture([
      readQualysFixture("optional-elements.xml"),
    ]);
    const [first, second, info, reopened, bare] = envelopes;
    expect(error).toBeNull();
    expect(envelopes.length).toBe(5);
    for (const record of recordsOf(batches)) {
      expect(validateEnvelope(record.json)).toBeNull();
    }

    expect(first?.findingKey).toBe("uvid:880000001");
    expect(first?.asset).toEqual({
      id: "5100201",
      hostname: "ñandú-01",
      fqdn: "ñandú-01.example.test",
      ipv4: ["10.20.30.41"],
      ipv6: [],
    });
    expect(first?.vulnerability).toEqual({
      id: "38739",
      title: null,
      cves: ["CVE-2015-4000", "CVE-2016-2183"],
      severity: "medium",
      vendorSeverity: "3",
    });
    expect(first?.state).toBe("open");
    expect(first?.port).toBe(22);
    expect(first?.protocol).toBe("tcp");
    expect(first?.firstSeen).toBe("2025-11-02T04:00:10.000Z");

    expect(second?.findingKey).toBe(
      "host:5100201|qid:11827|port:443|proto:tcp|ssl:1",
    );
    expect(second?.state).toBe("fixed");
    expect(second?.lastFixed).toBe("2026-02-20T08:30:00.000Z");
    expect(second?.vulnerability.severity).toBe("critical");
    expect(second?.vulnerability.cves).toEqual([]);

    expect(info?.asset.hostname).toBe("サーバー-02");
    expect(info?.asset.ipv4).toEqual([]);
    expect(info?.asset.ipv6).toEqual(["fd00::77"]);
    expect(info?.asset.fqdn).toBeNull();
    expect(info?.state).toBe("open");
    expect(info?.vendorState).toBeNull();
    expect(info?.vulnerability.severity).toBe("info");
    expect(info?.vulnerability.vendorSeverity).toBeNull();
    expect(info?.firstSeen).toBeNull();
    expect(info?.port).toBeNull();

    expect(reopened?.state).toBe("reopened");
    expect(reopened?.vendorState).toBe("Re-Opened");
    expect(bare?.asset.hostname).toBeNull();
    expect(bare?.vulnerability.severity).toBe("info");
    expect(bare?.vulnerability.vendorSeverity).toBe("1");
  });

  test("raw keeps trimmed text and nested elements", async () => {
    const { envelopes } = await runFixture([
      readQualysFixture("optional-elements.xml"),
    ]);
    const raw = envelopes[0]?.raw as {
      host: Record<string, unknown>;
      detection: Record<string, unknown>;
    };
    const second = envelopes[1]?.raw as { detection: Record<string, unknown> };
    expect(raw.host.OS).toBe("Ubuntu Linux 22.04");
    expect(raw.host.DNS_DATA).toEqual({
      HOSTNAME: "ñandú-01",
      DOMAIN: "example.test",
      FQDN: "ñandú-01.example.test",
    });
    expect(raw.host.DETECTION_LIST).toBeUndefined();
    expect(raw.detection.RESULTS).toStartWith("Type\tName\nkey exchange");
    expect(raw.detection.RESULTS).toEndWith("3des-cbc");
    expect(raw.detection.QDS).toEqual({ "@severity": "MEDIUM", "#text": "52" });
    expect(raw.detection.QDS_FACTORS).toEqual({
      QDS_FACTOR: [{ "@name": "CVSS", "#text": "5.9" }],
    });
    // Entities inside CDATA are literal text in Qualys output.
    expect(second.detection.RESULTS).toContain(
      "&amp; other &apos;headers&apos;",
    );
  });

  test("version uses the raw status and times", async () => {
    const { envelopes } = await runFixture([
      readQualysFixture("optional-elements.xml"),
    ]);
    const second = envelopes[1];
    expect(second?.version).toBe(
      qualysFindingVersion({
        status: "Fixed",
        lastFound: "2026-01-15T10:00:00Z",
        lastFixed: "2026-02-20T08:30:00Z",
      }),
    );
  });

  test("huge RESULTS are read across chunks", async () => {
    const results = "Package\tVersion\n".padEnd(450 * 1024, "x");
    const page = readQualysFixture("paged-last.xml").replace(
      "<STATUS>Fixed</STATUS>",
      `<RESULTS>\n  <![CDATA[\n${results}\n  ]]>\n</RESULTS><STATUS>Fixed</STATUS>`,
    );
    const { error, envelopes } = await runFixture([page], { chunkBytes: 4096 });
    const raw = envelopes[0]?.raw as { detection: { RESULTS: string } };
    expect(error).toBeNull();
    expect(raw.detection.RESULTS.length).toBe(results.length);
  });

  test("zero detections succeed with zero records", async () => {
    const { error, batches } = await runFixture([
      readQualysFixture("empty-page.xml"),
    ]);
    expect(error).toBeNull();
    expect(batches.length).toBe(1);
    expect(batches[0]?.records).toEqual([]);
    expect(batches[0]?.endOfPage).toBe(true);
    expect(JSON.parse(batches[0]?.cursor ?? "null")).toEqual({
      formatVersion: 1,
      phase: "done",
      watermark: "2026-03-01T12:00:00.000Z",
    });
  });

  test("batches split at maxBatchRecords", async () => {
    const { batches } = await runFixture(
      [readQualysFixture("optional-elements.xml")],
      {
        maxBatchRecords: 2,
      },
    );
    expect(batches.map((batch) => batch.records.length)).toEqual([2, 2, 1]);
    expect(batches.map((batch) => batch.cursor !== undefined)).toEqual([
      false,
      false,
      true,
    ]);
    expect(batches.map((batch) => batch.endOfPage)).toEqual([
      false,
      false,
      true,
    ]);
  });
});

describe("qualys adapter on broken pages", () => {
  test("SIMPLE_RETURN with 200 throws", async () => {
    const { error, batches } = await runFixture([
      readQualysFixture("simple-return-200.xml"),
    ]);
    expect(errorCodeOf(error)).toBe("vendor_response_invalid");
    expect(errorMessage(error)).toStartWith(
      "qualys detections page 1: vendor error document SIMPLE_RETURN code 1905: " +
        "parameter detection_processed_after has invalid value",
    );
    expect(batches).toEqual([]);
  });

  test("malformed XML throws with its position", async () => {
    const { error, batches, envelopes } = await runFixture(
      [readQualysFixture("malformed.xml")],
      { chunkBytes: 256, maxBatchRecords: 1 },
    );
    expect(errorCodeOf(error)).toBe("vendor_response_invalid");
    expect(errorMessage(error)).toMatch(
      /^qualys detections page 1: malformed XML at line 82 column \d+: unexpected close tag where <\/TRACKING_METHOD> was expected/,
    );
    expect(errorMessage(error)).toContain(
      `(request GET ${FIXTURE_BASE_URL}/api/2.0/`,
    );
    expect(batches.every((batch) => batch.cursor === undefined)).toBe(true);
    expect(envelopes.map((envelope) => envelope.asset.id)).toEqual([
      "5100201",
      "5100201",
    ]);
  });

  test("truncated body throws and yields no cursor", async () => {
    const full = readQualysFixture("optional-elements.xml");
    const cut = full.slice(0, full.indexOf("<ID>5100400</ID>"));
    const { error, batches, envelopes } = await runFixture([cut], {
      chunkBytes: 300,
      maxBatchRecords: 1,
    });
    expect(errorMessage(error)).toMatch(
      /^qualys detections page 1: truncated XML at line \d+ column \d+: unclosed tag/,
    );
    expect(batches.every((batch) => batch.cursor === undefined)).toBe(true);
    expect(envelopes.some((envelope) => envelope.asset.id === "5100400")).toBe(
      false,
    );
  });

  test("body that fails mid-stream throws", async () => {
    const bytes = new TextEncoder().encode(
      readQualysFixture("optional-elements.xml"),
    );
    const failing = () => {
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent) {
            controller.error(new Error("socket closed"));
            return;
          }
          sent = true;
          controller.enqueue(bytes.slice(0, 1500));
        },
      });
      return new Response(body, { status: 200 });
    };
    const { error, batches } = await runFixture([failing]);
    expect(errorMessage(error)).toStartWith(
      "qualys detections page 1: response body failed after 1500 bytes: socket closed",
    );
    expect(batches).toEqual([]);
  });

  test("badly typed values throw", async () => {
    const page = readQualysFixture("optional-elements.xml");
    const cases: [string, string, string][] = [
      ["<ID>5100201</ID>", "<ID>51x</ID>", 'HOST/ID is not a number: "51x"'],
      [
        "<QID>38739</QID>",
        "<QID>Q1</QID>",
        'DETECTION/QID is not a number: "Q1"',
      ],
      [
        "<STATUS>Active</STATUS>",
        "<STATUS>Open</STATUS>",
        'unknown STATUS "Open"',
      ],
      [
        "<SEVERITY>3</SEVERITY>",
        "<SEVERITY>9</SEVERITY>",
        'SEVERITY "9" is not 1-5',
      ],
      ["<PORT>22</PORT>", "<PORT>ssh</PORT>", 'PORT "ssh" is not 0-65535'],
      [
        "<LAST_FOUND_DATETIME>2026-02-26T22:09:40Z",
        "<LAST_FOUND_DATETIME>yesterday",
        "LAST_FOUND_DATETIME is not a date",
      ],
    ];
    for (const [from, to, problem] of cases) {
      const { error, batches } = await runFixture([page.replace(from, to)]);
      expect(errorMessage(error)).toContain(problem);
      expect(batches).toEqual([]);
    }
  });

  test("another root element throws", async () => {
    const kb = "<?xml version='1.0'?><KNOWLEDGE_BASE_VULN_LIST_OUTPUT/>";
    const { error } = await runFixture([kb]);
    expect(errorMessage(error)).toContain(
      "unexpected root element KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
    );
  });
});

describe("qualys adapter paging on fixtures", () => {
  test("follows the WARNING URL to the last page", async () => {
    const { error, batches, http } = await runFixture([
      readQualysFixture("paged-first.xml"),
      readQualysFixture("paged-last.xml"),
    ]);
    const firstCursor = JSON.parse(batches[0]?.cursor ?? "null");
    const lastCursor = JSON.parse(batches[1]?.cursor ?? "null");
    expect(error).toBeNull();
    expect(http.requests.length).toBe(2);
    expect(
      new URL(http.requests[1]?.url ?? "").searchParams.get("id_min"),
    ).toBe("7000002");
    expect(firstCursor.phase).toBe("paging");
    expect(firstCursor.page).toBe(2);
    expect(firstCursor.nextUrl).toBe(http.requests[1]?.url);
    expect(lastCursor).toEqual({
      formatVersion: 1,
      phase: "done",
      watermark: "2026-03-01T12:00:00.000Z",
    });
    expect(batches.map((batch) => batch.page)).toEqual([1, 2]);
  });

  test("WARNING URL on another host is not followed", async () => {
    const page = readQualysFixture("paged-first.xml").replace(
      "<URL><![CDATA[https://qualysapi.example.test/api",
      "<URL><![CDATA[https://collector.elsewhere.test/api",
    );
    const { error, http, batches } = await runFixture([page, "unused"]);
    expect(errorMessage(error)).toContain(
      "WARNING URL points to origin https://collector.elsewhere.test, " +
        "expected https://qualysapi.example.test; not followed",
    );
    expect(http.requests.length).toBe(1);
    expect(batches.every((batch) => batch.cursor === undefined)).toBe(true);
  });

  test("WARNING URL on another path is not followed", async () => {
    const page = readQualysFixture("paged-first.xml").replace(
      "/fo/asset/host/vm/detection/?",
      "/fo/knowledge_base/vuln/?",
    );
    const { error } = await runFixture([page]);
    expect(errorMessage(error)).toContain(
      "has path /api/2.0/fo/knowledge_base/vuln/",
    );
  });

  test("WARNING URL that does not advance id_min is rejected", async () => {
    const resume = JSON.stringify({
      formatVersion: 1,
      phase: "paging",
      cycleStartedAt: "2026-03-01T11:00:00.000Z",
      since: "2026-02-28T00:00:00Z",
      nextUrl:
        `${FIXTURE_BASE_URL}/api/2.0/fo/asset/host/vm/detection/` +
        "?action=list&id_min=7000002",
      page: 2,
    });
    const { error } = await runFixture([readQualysFixture("paged-first.xml")], {
      cursor: resume,
    });
    expect(errorMessage(error)).toStartWith(
      "qualys detections page 2 (id_min=7000002):",
    );
    expect(errorMessage(error)).toContain("does not advance past 7000002");
  });

  test("stored cursor on another host is rejected", async () => {
    const resume = JSON.stringify({
      formatVersion: 1,
      phase: "paging",
      cycleStartedAt: "2026-03-01T11:00:00.000Z",
      since: "2026-02-28T00:00:00Z",
      nextUrl:
        "https://old-platform.example.test/api/2.0/fo/asset/host/vm/detection/?action=list",
      page: 3,
    });
    const { error, http } = await runFixture(["unused"], { cursor: resume });
    expect(errorCodeOf(error)).toBe("state_file_invalid");
    expect(http.requests.length).toBe(0);
  });

  test("streamed bodies parse like whole ones", async () => {
    const page = readQualysFixture("optional-elements.xml");
    const whole = () => new Response(chunkedStream(page, 1 << 20));
    const byteByByte = await runFixture([page], { chunkBytes: 1 });
    const inOneChunk = await runFixture([whole]);
    const keys = (run: typeof byteByByte) =>
      run.envelopes.map((e) => e.findingKey);
    expect(byteByByte.error).toBeNull();
    expect(keys(byteByByte)).toEqual(keys(inOneChunk));
  });
});
