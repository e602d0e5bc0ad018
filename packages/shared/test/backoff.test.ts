import { describe, expect, test } from "bun:test";
import { AbortedError, computeBackoffMs, sleep } from "../src/index.ts";

const bounds = { baseMs: 100, maxMs: 2000 };

describe("computeBackoffMs", () => {
  test.each([
    // attempt, random, expected ms: ceiling min(2000, 100 * 2^attempt)
    [0, 0, 0],
    [0, 0.999999, 100],
    [1, 0.5, 100],
    [3, 0.999999, 800],
    [4, 0.999999, 1600],
    [5, 0.999999, 2000],
    [30, 0.5, 1000],
    [5000, 0.999999, 2000],
  ])("attempt %i with random %d gives %i", (attempt, random, expected) => {
    expect(computeBackoffMs(attempt, { ...bounds, random: () => random })).toBe(
      expected,
    );
  });

  test("stays within bounds for random draws", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const ms = computeBackoffMs(attempt, bounds);
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThanOrEqual(Math.min(2000, 100 * 2 ** attempt));
    }
  });

  test.each([
    ["negative attempt", -1, bounds],
    ["fractional attempt", 1.5, bounds],
    ["max below base", 1, { baseMs: 100, maxMs: 50 }],
    ["negative base", 1, { baseMs: -1, maxMs: 50 }],
  ])("rejects %s", (_name, attempt, options) => {
    expect(() => computeBackoffMs(attempt, options)).toThrow(RangeError);
  });
});

describe("sleep", () => {
  test("rejects when its signal fires", async () => {
    const controller = new AbortController();
    const sleeping = sleep(10_000, controller.signal, "test wait");
    controller.abort();

    await expect(sleeping).rejects.toBeInstanceOf(AbortedError);
  });

  test("rejects at once on an aborted signal", async () => {
    await expect(sleep(10, AbortSignal.abort())).rejects.toBeInstanceOf(
      AbortedError,
    );
  });
});
