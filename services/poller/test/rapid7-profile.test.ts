import { describe, expect, test } from "bun:test";
import { ConfigError, errorCodeOf, loadConfig } from "@vulnsub/shared";
import {
  rapid7CredentialsFrom,
  rapid7OptionSpecs,
  rapid7Profile,
} from "../src/adapters/rapid7.ts";
import {
  EMPTY_RAPID7_CURSOR,
  formatRapid7Cursor,
  parseRapid7Cursor,
} from "../src/adapters/rapid7-cursor.ts";
import {
  mapRapid7Severity,
  rapid7State,
} from "../src/adapters/rapid7-envelope.ts";

const NOW = new Date("2025-06-01T12:00:00.000Z");

function response(status: number, headers: Record<string, string> = {}) {
  return new Response("{}", { status, headers });
}

describe("rapid7 profile", () => {
  test("auth header carries the key", () => {
    const headers = rapid7Profile.authHeaders({
      vendor: "rapid7",
      apiKey: "k-123",
    });
    expect(headers).toEqual({ "X-Api-Key": "k-123" });
    expect(rapid7Profile.staticHeaders["Content-Type"]).toBe(
      "application/json",
    );
  });

  test("auth rejects other credentials", () => {
    expect(() =>
      rapid7Profile.authHeaders({
        vendor: "tenable",
        accessKey: "a",
        secretKey: "b",
      }),
    ).toThrow("tenable credentials");
  });

  test("429 with seconds is a rate throttle", () => {
    const signal = rapid7Profile.parseThrottle(
      response(429, { "Retry-After": "7" }),
      "",
      NOW,
    );
    expect(signal).toEqual({ kind: "rate", waitMs: 7000, reason: "http 429" });
  });

  test("503 with a date is a rate throttle", () => {
    const later = new Date(NOW.getTime() + 30_000).toUTCString();
    const signal = rapid7Profile.parseThrottle(
      response(503, { "Retry-After": later }),
      "",
      NOW,
    );
    expect(signal?.kind).toBe("rate");
    expect(signal?.waitMs).toBe(30_000);
  });

  test("no Retry-After is no signal", () => {
    expect(rapid7Profile.parseThrottle(response(429), "", NOW)).toBeNull();
    expect(rapid7Profile.parseThrottle(response(503), "", NOW)).toBeNull();
  });

  test("other statuses are no signal", () => {
    const signal = rapid7Profile.parseThrottle(
      response(500, { "Retry-After": "3" }),
      "",
      NOW,
    );
    expect(signal).toBeNull();
  });

  test("no advertised limits", () => {
    expect(rapid7Profile.parseAdvertisedLimit(response(200))).toBeNull();
    expect(rapid7Profile.parseConcurrencyLimit(response(200))).toBeNull();
  });
});

describe("rapid7 options", () => {
  const env = {
    RAPID7_BASE_URL: "http://127.0.0.1:9/",
    RAPID7_API_KEY: "secret-key",
  };

  test("defaults apply", () => {
    const { config } = loadConfig(rapid7OptionSpecs, { env });
    expect(config.rapid7PageSize).toBe(500);
    expect(config.rapid7DefinitionBatchSize).toBe(100);
    expect(config.rapid7MaxBodyBytes).toBe(256 * 1024 * 1024);
    expect(config.rapid7BaseUrl).toBe("http://127.0.0.1:9");
    expect(rapid7CredentialsFrom(config)).toEqual({
      vendor: "rapid7",
      apiKey: "secret-key",
    });
  });

  test("page size over 500 is rejected", () => {
    const load = () =>
      loadConfig(rapid7OptionSpecs, {
        env: { ...env, RAPID7_PAGE_SIZE: "501" },
      });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow("rapid7PageSize");
  });

  test("missing key is a config error", () => {
    const { config } = loadConfig(rapid7OptionSpecs, {
      env: { RAPID7_BASE_URL: env.RAPID7_BASE_URL },
    });
    expect(() => rapid7CredentialsFrom(config)).toThrow("RAPID7_API_KEY");
  });
});

describe("rapid7 cursor", () => {
  test("null is the empty cursor", () => {
    expect(parseRapid7Cursor(null)).toEqual(EMPTY_RAPID7_CURSOR);
  });

  test("round trip keeps every field", () => {
    const cursor = {
      formatVersion: 1 as const,
      watermark: "2025-05-01T00:00:00.000Z",
      cycle: {
        mode: "incremental" as const,
        startedAt: "2025-06-01T00:00:00.000Z",
        since: "2025-04-30T23:55:00.000Z",
        apiCursor: "1:::_S:::x-default-asset-2",
        page: 4,
      },
    };
    expect(parseRapid7Cursor(formatRapid7Cursor(cursor))).toEqual(cursor);
  });

  test("bad cursors are rejected", () => {
    for (const text of [
      "not json",
      '{"formatVersion":2}',
      '{"formatVersion":1,"watermark":"yesterday"}',
      '{"formatVersion":1,"watermark":null,"cycle":{"mode":"backfill"}}',
    ]) {
      let code = "";
      try {
        parseRapid7Cursor(text);
      } catch (error) {
        code = errorCodeOf(error);
      }
      expect(code).toBe("state_file_invalid");
    }
  });
});

describe("rapid7 mapping", () => {
  test("severity words map to the scale", () => {
    expect(mapRapid7Severity("critical")).toBe("critical");
    expect(mapRapid7Severity("Severe")).toBe("high");
    expect(mapRapid7Severity("moderate")).toBe("medium");
    expect(mapRapid7Severity("low")).toBe("low");
    expect(mapRapid7Severity("informational")).toBe("info");
    expect(mapRapid7Severity(null)).toBe("info");
  });

  test("state depends on list and reintroduced", () => {
    const again = { reintroduced: "2025-05-01T00:00:00Z" };
    expect(rapid7State("remediated", again)).toBe("fixed");
    expect(rapid7State("new", again)).toBe("reopened");
    expect(rapid7State("same", again)).toBe("open");
    expect(rapid7State("new", { reintroduced: null })).toBe("open");
  });
});
