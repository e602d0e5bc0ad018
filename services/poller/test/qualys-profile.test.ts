import { describe, expect, test } from "bun:test";
import { ConfigError, errorCodeOf, loadConfig } from "@vulnsub/shared";
import { qualysOptionSpecs, qualysProfile } from "../src/adapters/qualys.ts";
import { parseQualysCursor } from "../src/adapters/qualys-cursor.ts";
import {
  CONCURRENCY_WAIT_MS,
  DEFAULT_RATE_WAIT_MS,
} from "../src/adapters/qualys-profile.ts";
import { parseSimpleReturn } from "../src/adapters/qualys-simple-return.ts";

const NOW = new Date("2026-03-01T12:00:00Z");

function simpleReturn(
  code: string,
  items: Record<string, string> = {},
): string {
  const itemXml = Object.entries(items)
    .map(
      ([key, value]) => `<ITEM><KEY>${key}</KEY><VALUE>${value}</VALUE></ITEM>`,
    )
    .join("");
  return (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<SIMPLE_RETURN><RESPONSE>' +
    `<DATETIME>2026-03-01T12:00:00Z</DATETIME><CODE>${code}</CODE>` +
    "<TEXT> blocked </TEXT>" +
    (itemXml ? `<ITEM_LIST>${itemXml}</ITEM_LIST>` : "") +
    "</RESPONSE></SIMPLE_RETURN>"
  );
}

function answer(status: number, headers: Record<string, string> = {}) {
  return new Response(null, { status, headers });
}

describe("qualysProfile headers", () => {
  test("auth is HTTP Basic of user and password", () => {
    const headers = qualysProfile.authHeaders({
      vendor: "qualys",
      username: "demo",
      password: "pässword",
    });
    const encoded = (headers.Authorization ?? "").replace(/^Basic /, "");
    expect(headers.Authorization).toStartWith("Basic ");
    expect(Buffer.from(encoded, "base64").toString("utf8")).toBe(
      "demo:pässword",
    );
  });

  test("auth rejects another vendor's credentials", () => {
    expect(() =>
      qualysProfile.authHeaders({ vendor: "rapid7", apiKey: "k" }),
    ).toThrow("expected qualys credentials");
  });

  test("X-Requested-With is always sent", () => {
    expect(qualysProfile.staticHeaders["X-Requested-With"]).toBe("vulnsub");
  });
});

describe("qualysProfile.parseThrottle", () => {
  test("1965 waits SECONDS_TO_WAIT", () => {
    const body = simpleReturn("1965", { SECONDS_TO_WAIT: "42" });
    expect(qualysProfile.parseThrottle(answer(409), body, NOW)).toEqual({
      kind: "rate",
      waitMs: 42_000,
      reason: "qualys 1965",
    });
  });

  test("1965 takes the longer of body and header", () => {
    const body = simpleReturn("1965", { SECONDS_TO_WAIT: "5" });
    const response = answer(409, { "X-RateLimit-ToWait-Sec": "90" });
    expect(qualysProfile.parseThrottle(response, body, NOW)?.waitMs).toBe(
      90_000,
    );
  });

  test("1965 without a wait uses the default", () => {
    const signal = qualysProfile.parseThrottle(
      answer(409),
      simpleReturn("1965"),
      NOW,
    );
    expect(signal?.waitMs).toBe(DEFAULT_RATE_WAIT_MS);
  });

  test("1960 is a short concurrency wait", () => {
    const body = simpleReturn("1960", { CALLS_TO_FINISH: "1" });
    expect(qualysProfile.parseThrottle(answer(409), body, NOW)).toEqual({
      kind: "concurrency",
      waitMs: CONCURRENCY_WAIT_MS,
      reason: "qualys 1960",
    });
  });

  test("unreadable 409 falls back to the header", () => {
    const response = answer(409, { "X-RateLimit-ToWait-Sec": "7" });
    expect(qualysProfile.parseThrottle(response, "<html>", NOW)).toEqual({
      kind: "rate",
      waitMs: 7_000,
      reason: "qualys 409",
    });
    expect(qualysProfile.parseThrottle(answer(409), "<html>", NOW)).toBeNull();
  });

  test("other 409 codes are not throttles", () => {
    expect(
      qualysProfile.parseThrottle(answer(409), simpleReturn("1999"), NOW),
    ).toBeNull();
  });

  test("429 obeys Retry-After seconds and dates", () => {
    const seconds = answer(429, { "Retry-After": "30" });
    const date = answer(429, {
      "Retry-After": "Sun, 01 Mar 2026 12:02:00 GMT",
    });
    expect(qualysProfile.parseThrottle(seconds, "", NOW)?.waitMs).toBe(30_000);
    expect(qualysProfile.parseThrottle(date, "", NOW)?.waitMs).toBe(120_000);
    expect(qualysProfile.parseThrottle(answer(429), "", NOW)?.reason).toBe(
      "http 429",
    );
  });

  test("other statuses are not throttles", () => {
    expect(
      qualysProfile.parseThrottle(answer(400), simpleReturn("1965"), NOW),
    ).toBeNull();
    expect(qualysProfile.parseThrottle(answer(200), "", NOW)).toBeNull();
  });
});

describe("qualysProfile limits", () => {
  test("advertised limit from rate headers", () => {
    const response = answer(200, {
      "X-RateLimit-Limit": "300",
      "X-RateLimit-Window-Sec": "3600",
    });
    expect(qualysProfile.parseAdvertisedLimit(response)).toEqual({
      requests: 300,
      windowMs: 3_600_000,
    });
  });

  test("advertised limit needs both headers", () => {
    const partial = answer(200, { "X-RateLimit-Limit": "300" });
    const garbled = answer(200, {
      "X-RateLimit-Limit": "lots",
      "X-RateLimit-Window-Sec": "60",
    });
    expect(qualysProfile.parseAdvertisedLimit(partial)).toBeNull();
    expect(qualysProfile.parseAdvertisedLimit(garbled)).toBeNull();
  });

  test("concurrency limit from its header", () => {
    const two = answer(200, { "X-Concurrency-Limit-Limit": "2" });
    const zero = answer(200, { "X-Concurrency-Limit-Limit": "0" });
    expect(qualysProfile.parseConcurrencyLimit(two)).toBe(2);
    expect(qualysProfile.parseConcurrencyLimit(zero)).toBeNull();
    expect(qualysProfile.parseConcurrencyLimit(answer(200))).toBeNull();
  });
});

describe("qualys options and cursor", () => {
  test("defaults apply when only required options are set", () => {
    const { config } = loadConfig(qualysOptionSpecs, {
      env: {
        QUALYS_BASE_URL: "https://qualysapi.example.test/",
        QUALYS_USERNAME: "demo",
        QUALYS_PASSWORD: "demo-password",
      },
    });
    expect(config.qualysBaseUrl).toBe("https://qualysapi.example.test");
    expect(config.qualysApiVersion).toBe("2.0");
    expect(config.qualysTruncationLimit).toBe(1000);
    expect(config.qualysShowIgs).toBe(false);
    expect(config.qualysShowResults).toBe(true);
    expect(config.qualysShowQds).toBe(false);
  });

  test("bad option values are all reported", () => {
    let error: unknown = null;
    try {
      loadConfig(qualysOptionSpecs, {
        env: {
          QUALYS_BASE_URL: "qualysapi",
          QUALYS_USERNAME: "demo",
          QUALYS_API_VERSION: "6.0",
          QUALYS_TRUNCATION_LIMIT: "0",
        },
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.length).toBe(3);
  });

  test("cursor parse rejects bad input", () => {
    for (const text of [
      "not json",
      "{}",
      '{"formatVersion":1,"phase":"done","watermark":"soon"}',
      '{"formatVersion":1,"phase":"paging","cycleStartedAt":"2026-01-01T00:00:00Z",' +
        '"since":"2026-01-01T00:00:00Z","nextUrl":"","page":1}',
    ]) {
      let error: unknown = null;
      try {
        parseQualysCursor(text);
      } catch (caught) {
        error = caught;
      }
      expect(errorCodeOf(error)).toBe("state_file_invalid");
    }
  });

  test("SIMPLE_RETURN parse reads code, text and items", () => {
    const parsed = parseSimpleReturn(
      simpleReturn("1965", { SECONDS_TO_WAIT: "3" }),
    );
    expect(parsed).toEqual({
      code: "1965",
      text: "blocked",
      datetime: "2026-03-01T12:00:00Z",
      items: { SECONDS_TO_WAIT: "3" },
    });
    expect(() => parseSimpleReturn("<OTHER/>")).toThrow(
      "expected SIMPLE_RETURN",
    );
  });
});
