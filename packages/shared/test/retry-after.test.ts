import { describe, expect, test } from "bun:test";
import { parseRetryAfter } from "../src/index.ts";

const now = new Date("2025-03-10T12:00:00.000Z");

describe("parseRetryAfter", () => {
  test.each([
    ["delay seconds", "120", 120_000],
    ["zero", "0", 0],
    ["padded", "  30 ", 30_000],
    ["negative delay", "-5", 0],
    ["imf-fixdate ahead", "Mon, 10 Mar 2025 12:00:30 GMT", 30_000],
    ["imf-fixdate past", "Mon, 10 Mar 2025 11:59:00 GMT", 0],
    ["rfc 850 date", "Monday, 10-Mar-25 12:01:00 GMT", 60_000],
    ["asctime date", "Mon Mar 10 12:00:05 2025", 5_000],
    ["asctime padded day", "Sat Mar  1 12:00:00 2025", 0],
    ["leap second", "Mon, 10 Mar 2025 12:00:60 GMT", 59_000],
  ])("%s", (_name, value, expectedMs) => {
    expect(parseRetryAfter(value, now)).toBe(expectedMs);
  });

  test.each([
    ["null", null],
    ["empty", ""],
    ["fraction", "1.5"],
    ["words", "soon"],
    ["unit suffix", "30s"],
    ["iso date", "2025-03-10T12:00:30Z"],
    ["missing GMT", "Mon, 10 Mar 2025 12:00:30"],
    ["impossible day", "Fri, 31 Feb 2025 12:00:00 GMT"],
    ["bad hour", "Mon, 10 Mar 2025 25:00:00 GMT"],
    ["bad month", "Mon, 10 Foo 2025 12:00:00 GMT"],
    ["overflow", "99999999999999999999"],
  ])("rejects %s", (_name, value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });

  test("rfc 850 year far ahead means the past century", () => {
    // 2025 + 50 < 2099, so "99" is 1999: a past date, no wait.
    expect(parseRetryAfter("Friday, 31-Dec-99 23:59:59 GMT", now)).toBe(0);
  });
});
