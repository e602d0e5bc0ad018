import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FindingEnvelope } from "@vulnsub/shared";
import { parseGroundTruth } from "../../scripts/lib/ground-truth.ts";
import {
  formatVerifyResult,
  verifyLog,
  type GroundTruthSet,
} from "../../scripts/verify-log.ts";

let dir: string;
let logPath: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vulnsub-verify-"));
  logPath = join(dir, "vulnerabilities.jsonl");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("verifyLog", () => {
  test("clean log passes", async () => {
    writeLog([envelope("k1", "v1"), envelope("k2", "v2")].map(line));
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"], ["k2", "v2"]),
    });
    expect(result.lines).toBe(2);
    expect(result.invalid.count).toBe(0);
    expect(result.duplicated.count).toBe(0);
    expect(result.lost?.count).toBe(0);
    expect(result.unexpected?.count).toBe(0);
    expect(result.byVendor["qualys:default"]?.lines).toBe(2);
    expect(result.ok).toBe(true);
  });

  test("torn last line is invalid", async () => {
    const whole = line(envelope("k1", "v1"));
    const torn = line(envelope("k2", "v2")).slice(0, 40);
    writeFileSync(logPath, `${whole}\n${torn}`);
    const result = await verifyLog({ logPath });
    expect(result.tornTail).toBe(true);
    expect(result.invalid.count).toBe(1);
    expect(result.invalid.examples[0]?.line).toBe(2);
    expect(result.ok).toBe(false);
  });

  test("complete last line without newline is torn", async () => {
    writeFileSync(logPath, line(envelope("k1", "v1")));
    const result = await verifyLog({ logPath });
    expect(result.tornTail).toBe(true);
    expect(result.ok).toBe(false);
  });

  test("duplicate identity is reported", async () => {
    writeLog(
      [envelope("k1", "v1"), envelope("k2", "v1"), envelope("k1", "v1")].map(
        line,
      ),
    );
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"], ["k2", "v1"]),
    });
    expect(result.duplicated.count).toBe(1);
    expect(result.duplicated.examples[0]?.line).toBe(3);
    expect(result.byVendor["qualys:default"]?.duplicated).toBe(1);
    expect(result.ok).toBe(false);
  });

  test("duplicate found without ground truth", async () => {
    writeLog([envelope("k1", "v1"), envelope("k1", "v1")].map(line));
    const result = await verifyLog({ logPath });
    expect(result.duplicated.count).toBe(1);
    expect(result.lost).toBeNull();
    expect(result.unexpected).toBeNull();
  });

  test("new version of a finding is no duplicate", async () => {
    writeLog([envelope("k1", "v1"), envelope("k1", "v2")].map(line));
    const result = await verifyLog({ logPath });
    expect(result.duplicated.count).toBe(0);
    expect(result.ok).toBe(true);
  });

  test("schema-invalid line is reported", async () => {
    const bad = { ...envelope("k1", "v1"), severity: "urgent" };
    const badVersion = envelope("k2", "not-hex");
    writeLog([line(bad), line(badVersion), line(envelope("k3", "v3"))]);
    const result = await verifyLog({ logPath });
    expect(result.invalid.count).toBe(2);
    expect(result.invalid.examples[0]?.line).toBe(1);
    expect(result.invalid.examples[0]?.reason).toContain("schema");
    expect(result.invalid.examples[1]?.reason).toContain("/version");
  });

  test("non-JSON line is reported", async () => {
    writeLog(["{not json", "[1,2]", line(envelope("k1", "v1"))]);
    const result = await verifyLog({ logPath });
    expect(result.invalid.count).toBe(2);
    expect(result.invalid.examples[0]?.reason).toContain("not JSON");
    expect(result.invalid.examples[1]?.reason).toBe("not a JSON object");
  });

  test("served version missing is lost", async () => {
    writeLog([line(envelope("k1", "v1"))]);
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"], ["k2", "v2"], ["k3", "v3"]),
    });
    expect(result.lost?.count).toBe(2);
    expect(result.lost?.examples[0]).toContain(hex("k2"));
    expect(result.byVendor["qualys:default"]?.lost).toBe(2);
    expect(result.ok).toBe(false);
  });

  test("line never served is unexpected", async () => {
    writeLog([envelope("k1", "v1"), envelope("k9", "v9")].map(line));
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"]),
    });
    expect(result.unexpected?.count).toBe(1);
    expect(result.unexpected?.examples[0]?.line).toBe(2);
    expect(result.ok).toBe(false);
  });

  test("ground truth is matched per vendor", async () => {
    writeLog([line(envelope("k1", "v1", "tenable"))]);
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"]),
    });
    expect(result.lost?.count).toBe(1);
    expect(result.unexpected?.count).toBe(0);
    expect(result.byVendor["qualys:default"]?.lost).toBe(1);
  });

  test("vendor without ground truth is not checked", async () => {
    writeLog(
      [
        envelope("k1", "v1"),
        envelope("k2", "v2", "tenable"),
        envelope("k3", "v3", "rapid7"),
      ].map(line),
    );
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"]),
    });
    expect(result.lost?.count).toBe(0);
    expect(result.unexpected?.count).toBe(0);
    expect(result.notChecked).toEqual(["tenable:default", "rapid7:default"]);
    expect(result.byVendor["tenable:default"]?.checked).toBe(false);
    expect(result.byVendor["qualys:default"]?.checked).toBe(true);
    expect(result.ok).toBe(true);
    const text = formatVerifyResult(result).join("\n");
    expect(text).toContain("not checked tenable:default, rapid7:default");
  });

  test("source without ground truth is not checked", async () => {
    const emea = { ...envelope("k2", "v2"), source: "emea" };
    writeLog([line(envelope("k1", "v1")), line(emea)]);
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"]),
    });
    expect(result.unexpected?.count).toBe(0);
    expect(result.notChecked).toEqual(["qualys:emea"]);
    expect(result.ok).toBe(true);
  });

  test("duplicate of a job without ground truth counts", async () => {
    const other = envelope("k2", "v2", "tenable");
    writeLog([line(envelope("k1", "v1")), line(other), line(other)]);
    const result = await verifyLog({
      logPath,
      groundTruth: truth(["k1", "v1"]),
    });
    expect(result.duplicated.count).toBe(1);
    expect(result.ok).toBe(false);
  });

  test("empty log with empty ground truth passes", async () => {
    writeFileSync(logPath, "");
    const result = await verifyLog({ logPath, groundTruth: truth() });
    expect(result.lines).toBe(0);
    expect(result.ok).toBe(true);
  });

  test("long log streams in chunks", async () => {
    const items = Array.from({ length: 3000 }, (_, i) =>
      envelope(`k${i}`, `v${i}`),
    );
    writeLog(items.map(line));
    const pairs = items.map((item) => [item.findingKey, item.version] as const);
    const result = await verifyLog({
      logPath,
      groundTruth: [
        { vendor: "qualys", source: "default", served: pairs.map(served) },
      ],
    });
    expect(result.lines).toBe(3000);
    expect(result.ok).toBe(true);
  });
});

function writeLog(lines: string[]) {
  writeFileSync(logPath, lines.map((text) => `${text}\n`).join(""));
}

function line(value: unknown): string {
  return JSON.stringify(value);
}

/** Turns a short test name into a 16-hex-digit version or key suffix. */
function hex(name: string): string {
  return Buffer.from(name).toString("hex").padEnd(16, "0").slice(0, 16);
}

function served([findingKey, version]: readonly [string, string]) {
  return { findingKey, version };
}

function truth(...pairs: [string, string][]): GroundTruthSet[] {
  return [
    {
      vendor: "qualys",
      source: "default",
      served: pairs.map(([key, version]) => ({
        findingKey: `host:${hex(key)}`,
        version: hex(version),
      })),
    },
  ];
}

function envelope(
  key: string,
  version: string,
  vendor: FindingEnvelope["vendor"] = "qualys",
): FindingEnvelope {
  const isHex = /^v\d+$/.test(version) || /^k\d+$/.test(version);
  return {
    schemaVersion: 1,
    vendor,
    source: "default",
    findingKey: key.startsWith("k") ? `host:${hex(key)}` : key,
    version: isHex ? hex(version) : version,
    observedAt: "2026-01-02T03:04:05.000Z",
    asset: {
      id: "1001",
      hostname: "web-01",
      fqdn: "web-01.example.test",
      ipv4: ["10.0.0.1"],
      ipv6: [],
    },
    vulnerability: {
      id: "38170",
      title: "SSL certificate expired",
      cves: ["CVE-2024-0001"],
      severity: "medium",
      vendorSeverity: "3",
    },
    state: "open",
    vendorState: "Active",
    firstSeen: "2025-12-01T00:00:00Z",
    lastSeen: "2026-01-01T00:00:00Z",
    lastFixed: null,
    port: 443,
    protocol: "tcp",
    raw: { QID: "38170" },
  };
}

describe("parseGroundTruth", () => {
  const origin = "http://127.0.0.1:1/_sim/ground-truth";
  const served = [{ findingKey: "k", version: "0123456789abcdef" }];

  test("object with vendor and served", () => {
    const set = parseGroundTruth(
      { vendor: "rapid7", served },
      { source: "default", origin },
    );
    expect(set.vendor).toBe("rapid7");
    expect(set.served).toEqual(served);
  });

  test("bare array takes the given vendor", () => {
    const set = parseGroundTruth(served, {
      source: "emea",
      vendor: "tenable",
      origin,
    });
    expect(set.vendor).toBe("tenable");
    expect(set.source).toBe("emea");
  });

  test("vendor mismatch is rejected", () => {
    const body = { vendor: "rapid7", served };
    expect(() =>
      parseGroundTruth(body, { source: "default", vendor: "qualys", origin }),
    ).toThrow(/not qualys/);
  });

  test("bad item is rejected", () => {
    const body = { vendor: "rapid7", served: [{ findingKey: 1 }] };
    expect(() => parseGroundTruth(body, { source: "default", origin })).toThrow(
      /item 0/,
    );
  });
});
