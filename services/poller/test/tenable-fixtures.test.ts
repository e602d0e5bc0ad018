import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { VendorHttpError } from "@vulnsub/shared";
import type { VendorHttp, VendorRequest } from "../src/adapter.ts";
import { createTenableAdapter } from "../src/adapters/tenable.ts";
import { createLogCapture } from "./helpers/log-capture.ts";
import {
  createEnvelopeValidator,
  createSyncContext,
  runTenableCycle,
} from "./helpers/tenable-http.ts";

const FIXTURES = join(import.meta.dir, "fixtures/tenable");
const EXPORT_UUID = "6c0f3e1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b";
const ACTIVE_UUID = "9d8e7f60-5a4b-4c3d-9e2f-1a0b9c8d7e6f";
const STATUS = `GET /vulns/export/${EXPORT_UUID}/status`;
const CREATE = "POST /vulns/export";

function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), "utf8");
}

/** A reply: a fixture file (200), or an error status with a body. */
type Reply = string | { status: number; body?: string; keepBody?: boolean };

/**
 * Creates a VendorHttp serving fixtures per "METHOD /path". Each call takes the
 * next reply of its route; the last one repeats. Non-2xx replies throw
 * VendorHttpError as VendorHttp does, with the body in the context when
 * `keepBody` is set.
 */
function createFixtureHttp(routes: Record<string, Reply[]>) {
  const requests: VendorRequest[] = [];
  const http: VendorHttp = {
    async request(request) {
      requests.push(request);
      const route = `${request.method} ${request.url}`;
      const replies = routes[route];
      if (!replies || replies.length === 0) throw new Error(`no fixture for ${route}`);
      const reply = (replies.length > 1 ? replies.shift() : replies[0]) as Reply;
      if (typeof reply === "string") return new Response(fixture(reply));
      throw new VendorHttpError(`${route}: HTTP ${reply.status}`, reply.status, {
        vendor: "tenable",
        ...(reply.keepBody ? { body: reply.body } : {}),
      });
    },
  };
  return { http, requests };
}

function chunkRoute(id: number) {
  return `GET /vulns/export/${EXPORT_UUID}/chunks/${id}`;
}

async function run(
  routes: Record<string, Reply[]>,
  settings: Parameters<typeof createTenableAdapter>[0] = {},
  cursor: string | null = null,
) {
  const logs = createLogCapture();
  const { http, requests } = createFixtureHttp(routes);
  const adapter = createTenableAdapter({
    tenableStatusPollMinMs: 1,
    tenableStatusPollMaxMs: 2,
    ...settings,
  });
  const context = createSyncContext(http, logs.logger, {
    now: () => new Date("2026-01-05T00:00:00Z"),
    // The fixtures' exports were requested with since 1767225600.
    backfillStart: new Date("2026-01-01T00:00:00Z"),
  });
  const outcome = await runTenableCycle(adapter, cursor, context);
  return { outcome, requests, logs };
}

describe("tenable adapter on fixtures", () => {
  test("chunks map to envelopes", async () => {
    const { outcome } = await run({
      [CREATE]: ["export-created.json"],
      [STATUS]: ["status-queued.json", "status-processing.json", "status-finished.json"],
      [chunkRoute(1)]: ["chunk-1.json"],
      [chunkRoute(2)]: ["chunk-2.json"],
    });
    expect(outcome.error).toBeNull();
    expect(outcome.records.length).toBe(5);
    const pages = outcome.batches.map((batch) => batch.page);
    expect(pages).toEqual([2, 1, 0]);
    const validate = createEnvelopeValidator();
    for (const record of outcome.records) expect(validate(record.json)).toBeNull();
  });

  test("open finding fields are copied", async () => {
    const envelopes = await chunkOneEnvelopes();
    const open = envelopes[0]!;
    expect(open.findingKey).toBe("fid:c3b2a190-8f7e-4d6c-b5a4-93827160f5e4");
    expect(open.asset).toEqual({
      id: "4f1d2c3b-5a69-4788-97a6-b5c4d3e2f101",
      hostname: "zürich-app-01",
      fqdn: "zürich-app-01.branch.example",
      ipv4: ["198.51.100.24"],
      ipv6: ["2001:db8:10::24"],
    });
    expect(open.vulnerability).toEqual({
      id: "201198",
      title: "Apache 2.4.x < 2.4.62 Multiple Vulnerabilities",
      cves: ["CVE-2024-38474", "CVE-2024-38475"],
      severity: "high",
      vendorSeverity: "high",
    });
    expect(open.state).toBe("open");
    expect(open.port).toBe(443);
    expect(open.observedAt).toBe("2026-01-05T00:00:00.000Z");
  });

  test("reopened host finding without finding_id", async () => {
    const envelopes = await chunkOneEnvelopes();
    const reopened = envelopes[1]!;
    expect(reopened.findingKey).toBe(
      "asset:7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2910|plugin:11936|port:0|proto:tcp",
    );
    expect(reopened.asset.ipv4).toEqual(["10.20.30.40", "10.20.30.41"]);
    expect(reopened.asset.fqdn).toBeNull();
    expect(reopened.port).toBe(0);
    expect(reopened.state).toBe("reopened");
    expect(reopened.vendorState).toBe("REOPENED");
    expect(reopened.lastFixed).toBe("2025-09-30T04:00:00.000Z");
  });

  test("fixed finding with severity_id only", async () => {
    const envelopes = await chunkOneEnvelopes();
    const fixed = envelopes[2]!;
    expect(fixed.state).toBe("fixed");
    expect(fixed.vulnerability.severity).toBe("critical");
    expect(fixed.vulnerability.vendorSeverity).toBe("4");
    expect(fixed.vulnerability.id).toBe("232101");
    expect(fixed.asset.fqdn).toBe("db-07.corp.example");
    expect(fixed.asset.ipv4).toEqual([]);
    expect(fixed.asset.ipv6).toEqual(["fd00:10:0:7::5"]);
    expect(fixed.protocol).toBe("tcp");
  });

  test("raw keeps the vendor object", async () => {
    const envelopes = await chunkOneEnvelopes();
    const original = JSON.parse(fixture("chunk-1.json"));
    expect(envelopes.map((envelope) => envelope.raw)).toEqual(original);
  });

  test("wrong types fail naming the field", async () => {
    const { outcome, requests } = await run({
      [CREATE]: ["export-created.json"],
      [STATUS]: ["status-finished-chunk-1.json"],
      [chunkRoute(1)]: ["chunk-wrong-types.json"],
    });
    const error = outcome.error as VendorHttpError;
    expect(outcome.records).toEqual([]);
    expect(error.code).toBe("vendor_response_invalid");
    expect(error.message).toContain(`tenable export ${EXPORT_UUID} chunk 1`);
    expect(error.message).toContain("finding 1: port.port");
    expect(error.context.field).toBe("port.port");
    expect(error.context.chunkId).toBe(1);
    expect(requests.filter((r) => r.operation === "export.chunk").length).toBe(1);
  });

  for (const name of ["chunk-truncated.json", "chunk-malformed.json"]) {
    test(`${name.slice(6, -5)} chunk fails after downloads`, async () => {
      const { outcome, requests, logs } = await run(
        {
          [CREATE]: ["export-created.json"],
          [STATUS]: ["status-finished-chunk-1.json"],
          [chunkRoute(1)]: [name],
        },
        { tenableChunkAttempts: 3 },
      );
      expect(outcome.records).toEqual([]);
      expect(outcome.batches).toEqual([]);
      expect((outcome.error as Error).message).toContain("unreadable after 3 downloads");
      expect(requests.filter((r) => r.operation === "export.chunk").length).toBe(3);
      expect(logs.events("chunk.unreadable").length).toBe(2);
    });
  }

  test("chunk read again after one bad download", async () => {
    const { outcome } = await run({
      [CREATE]: ["export-created.json"],
      [STATUS]: ["status-finished-chunk-1.json"],
      [chunkRoute(1)]: ["chunk-truncated.json", "chunk-1.json"],
    });
    expect(outcome.error).toBeNull();
    expect(outcome.records.length).toBe(3);
  });

  test("chunk over the size limit fails at once", async () => {
    const { outcome, requests } = await run(
      {
        [CREATE]: ["export-created.json"],
        [STATUS]: ["status-finished-chunk-1.json"],
        [chunkRoute(1)]: ["chunk-1.json"],
      },
      { tenableMaxChunkBytes: 1024 },
    );
    expect(outcome.records).toEqual([]);
    expect((outcome.error as Error).message).toContain("exceeds the limit of 1024 bytes");
    expect(requests.filter((r) => r.operation === "export.chunk").length).toBe(1);
  });

  test("empty export yields zero records", async () => {
    const { outcome } = await run({
      [CREATE]: ["export-created.json"],
      [STATUS]: ["status-finished-empty.json"],
    });
    expect(outcome.error).toBeNull();
    expect(outcome.records).toEqual([]);
    expect(outcome.batches.length).toBe(1);
    expect(JSON.parse(outcome.cursor!)).toEqual({
      watermark: Date.parse("2026-01-05T00:00:00Z"),
    });
  });

  test("409 body names the export to adopt", async () => {
    const activeStatus = `GET /vulns/export/${ACTIVE_UUID}/status`;
    const { outcome, requests, logs } = await run({
      [CREATE]: [{ status: 409, body: fixture("conflict-409.json"), keepBody: true }],
      [activeStatus]: ["status-finished-empty.json"],
    });
    expect(outcome.error).toBeNull();
    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([CREATE, activeStatus]);
    expect(logs.events("export.adopted")[0]?.exportUuid).toBe(ACTIVE_UUID);
    // The adopted export was created before this cycle began.
    expect(JSON.parse(outcome.cursor!).watermark).toBe(1767312000000);
  });

  test("409 without body adopts from the job list", async () => {
    const activeStatus = `GET /vulns/export/${ACTIVE_UUID}/status`;
    const { outcome, requests } = await run(
      {
        [CREATE]: [{ status: 409 }],
        "GET /vulns/export/status": ["jobs-list.json"],
        [activeStatus]: ["status-finished-empty.json"],
      },
      { tenableNumAssets: 500 },
    );
    expect(outcome.error).toBeNull();
    expect(requests.map((r) => r.url)).toContain(`/vulns/export/${ACTIVE_UUID}/status`);
  });

  test("export error requests a new export", async () => {
    const { outcome, requests, logs } = await run({
      [CREATE]: ["export-created.json"],
      [STATUS]: ["status-error.json", "status-finished-empty.json"],
    });
    expect(outcome.error).toBeNull();
    expect(requests.filter((r) => r.operation === "export.create").length).toBe(2);
    expect(logs.events("export.failed")[0]?.level).toBe("error");
  });

  test("resume skips done chunks without a new export", async () => {
    const cursor = JSON.stringify({
      exportUuid: EXPORT_UUID,
      window: { since: 1767225600, startedAt: 1767312000000 },
      chunksDone: [2],
    });
    const { outcome, requests } = await run(
      {
        [STATUS]: ["status-finished.json"],
        [chunkRoute(1)]: ["chunk-1.json"],
      },
      {},
      cursor,
    );
    expect(outcome.error).toBeNull();
    expect(requests.map((r) => r.operation)).toEqual(["export.status", "export.chunk"]);
    expect(JSON.parse(outcome.cursor!)).toEqual({ watermark: 1767312000000 });
  });

  test("invalid cursor is rejected", async () => {
    const { outcome } = await run({}, {}, '{"exportUuid": 7}');
    expect((outcome.error as { code: string }).code).toBe("state_file_invalid");
  });
});

async function chunkOneEnvelopes(): Promise<Record<string, any>[]> {
  const { outcome } = await run({
    [CREATE]: ["export-created.json"],
    [STATUS]: ["status-finished-chunk-1.json"],
    [chunkRoute(1)]: ["chunk-1.json"],
  });
  if (outcome.error) throw outcome.error;
  return outcome.records.map((record) => JSON.parse(record.json));
}
