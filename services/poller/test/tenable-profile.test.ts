import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "@vulnsub/shared";
import {
  TENABLE_BUILD_VERSION,
  createTenableAdapter,
  tenableOptionSpecs,
  tenableProfile,
} from "../src/adapters/tenable.ts";
import {
  formatExportCursor,
  formatWatermarkCursor,
  parseTenableCursor,
} from "../src/adapters/tenable-cursor.ts";

const NOW = new Date("2026-03-01T12:00:00Z");

function reply(status: number, headers: Record<string, string> = {}) {
  return new Response("", { status, headers });
}

describe("tenableProfile", () => {
  test("auth header carries both keys", () => {
    const headers = tenableProfile.authHeaders({
      vendor: "tenable",
      accessKey: "ak",
      secretKey: "sk",
    });
    expect(headers).toEqual({ "X-ApiKeys": "accessKey=ak;secretKey=sk" });
  });

  test("auth rejects other vendors' credentials", () => {
    expect(() =>
      tenableProfile.authHeaders({ vendor: "rapid7", apiKey: "k" }),
    ).toThrow("rapid7");
  });

  test("user agent follows the integration form", () => {
    expect(tenableProfile.staticHeaders["User-Agent"]).toBe(
      `Integration/1.0 (vulnsub; vulnsub; Build/${TENABLE_BUILD_VERSION})`,
    );
  });

  test("429 with retry-after seconds is a rate throttle", () => {
    const signal = tenableProfile.parseThrottle(
      reply(429, { "retry-after": "30" }),
      "<html></html>",
      NOW,
    );
    expect(signal).toEqual({ kind: "rate", waitMs: 30_000, reason: "http 429" });
  });

  test("429 with an http date waits until it", () => {
    const signal = tenableProfile.parseThrottle(
      reply(429, { "retry-after": "Sun, 01 Mar 2026 12:00:45 GMT" }),
      "",
      NOW,
    );
    expect(signal?.waitMs).toBe(45_000);
  });

  test("429 without retry-after leaves the wait to backoff", () => {
    const signal = tenableProfile.parseThrottle(reply(429), "", NOW);
    expect(signal).toEqual({ kind: "rate", waitMs: 0, reason: "http 429" });
  });

  test("other statuses are not throttles", () => {
    for (const status of [200, 409, 503]) {
      expect(tenableProfile.parseThrottle(reply(status), "", NOW)).toBeNull();
    }
  });

  test("no advertised limits", () => {
    const response = reply(200, { "x-ratelimit-limit": "100" });
    expect(tenableProfile.parseAdvertisedLimit(response)).toBeNull();
    expect(tenableProfile.parseConcurrencyLimit(response)).toBeNull();
  });
});

describe("tenableOptionSpecs", () => {
  test("defaults apply with an empty environment", () => {
    const { config } = loadConfig(tenableOptionSpecs, { env: {} });
    expect(config.tenableNumAssets).toBe(500);
    expect(config.tenableStatusPollMinMs).toBe(2000);
    expect(config.tenableStatusPollMaxMs).toBe(30_000);
    expect(config.tenableIncludeUnlicensed).toBe(false);
    expect(config.tenableMaxChunkBytes).toBe(512 * 1024 * 1024);
  });

  test("environment overrides a default", () => {
    const { config } = loadConfig(tenableOptionSpecs, {
      env: { TENABLE_NUM_ASSETS: "1000", TENABLE_INCLUDE_UNLICENSED: "true" },
    });
    expect(config.tenableNumAssets).toBe(1000);
    expect(config.tenableIncludeUnlicensed).toBe(true);
  });

  test("num_assets outside 50-5000 is rejected", () => {
    for (const value of ["49", "5001", "abc"]) {
      expect(() =>
        loadConfig(tenableOptionSpecs, { env: { TENABLE_NUM_ASSETS: value } }),
      ).toThrow(ConfigError);
    }
  });

  test("poll max below min is rejected", () => {
    expect(() =>
      createTenableAdapter({
        tenableStatusPollMinMs: 5000,
        tenableStatusPollMaxMs: 1000,
      }),
    ).toThrow("below min");
  });
});

describe("tenable cursor", () => {
  test("export cursor round-trips", () => {
    const text = formatExportCursor(
      "b8f7f2da-0000-4000-8000-000000000001",
      { since: 1_767_225_600, startedAt: 1_767_312_000_123 },
      [3, 1],
    );
    expect(parseTenableCursor(text)).toEqual({
      kind: "export",
      exportUuid: "b8f7f2da-0000-4000-8000-000000000001",
      window: { since: 1_767_225_600, startedAt: 1_767_312_000_123 },
      chunksDone: [1, 3],
    });
  });

  test("watermark cursor round-trips", () => {
    const text = formatWatermarkCursor(1_767_312_000_123);
    expect(parseTenableCursor(text)).toEqual({
      kind: "watermark",
      watermark: 1_767_312_000_123,
    });
  });

  test("null cursor stays null", () => {
    expect(parseTenableCursor(null)).toBeNull();
  });

  test("bad cursors are rejected", () => {
    for (const text of ["not json", "{}", '{"watermark":-1}', '{"watermark":1,"x":2}']) {
      expect(() => parseTenableCursor(text)).toThrow("tenable cursor");
    }
  });
});
