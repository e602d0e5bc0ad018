import { describe, expect, test } from "bun:test";
import { createDedupIndex, createDedupIndexFromSlots } from "../src/dedup-index.ts";
import { fingerprintOf, type Fingerprint } from "../src/finding-identity.ts";

const key = (i: number): Fingerprint =>
  fingerprintOf({ vendor: "tenable", source: "default", findingKey: `f${i}`, version: "v1" });

describe("dedup index", () => {
  test("add then has", () => {
    const index = createDedupIndex();
    expect(index.add(key(1))).toBe(true);
    expect(index.add(key(1))).toBe(false);
    expect(index.has(key(1))).toBe(true);
    expect(index.has(key(2))).toBe(false);
    expect(index.size).toBe(1);
  });

  test("grows past its capacity", () => {
    const index = createDedupIndex();
    for (let i = 0; i < 50_000; i++) index.add(key(i));
    expect(index.size).toBe(50_000);
    expect(index.capacity).toBe(131_072);
    let missing = 0;
    for (let i = 0; i < 50_000; i++) if (!index.has(key(i))) missing++;
    expect(missing).toBe(0);
    expect(index.has(key(50_001))).toBe(false);
  });

  test("delete keeps probe chains", () => {
    // A small table forces long collision chains that wrap around.
    const index = createDedupIndex();
    const keys = Array.from({ length: 700 }, (_, i) => key(i));
    for (const fingerprint of keys) index.add(fingerprint);
    for (let i = 0; i < keys.length; i += 2) {
      expect(index.delete(keys[i] as Fingerprint)).toBe(true);
    }
    let wrong = 0;
    keys.forEach((fingerprint, i) => {
      if (index.has(fingerprint) !== (i % 2 === 1)) wrong++;
    });
    expect(wrong).toBe(0);
    expect(index.size).toBe(350);
  });

  test("zero fingerprint is stored", () => {
    const index = createDedupIndex();
    expect(index.add({ lo: 0, hi: 0 })).toBe(true);
    expect(index.has({ lo: 0, hi: 0 })).toBe(true);
    expect(index.size).toBe(1);
  });

  test("same-home keys collide safely", () => {
    const index = createDedupIndex();
    for (let hi = 1; hi <= 100; hi++) index.add({ lo: 5, hi });
    index.delete({ lo: 5, hi: 50 });
    expect(index.has({ lo: 5, hi: 100 })).toBe(true);
    expect(index.has({ lo: 5, hi: 50 })).toBe(false);
  });

  test("slots round trip", () => {
    const index = createDedupIndex();
    for (let i = 0; i < 1000; i++) index.add(key(i));
    const copy = createDedupIndexFromSlots(index.copySlots(), 1000);
    expect(copy.has(key(999))).toBe(true);
    expect(() => createDedupIndexFromSlots(index.copySlots(), 999)).toThrow(
      "1000 keys stored, header records 999",
    );
  });
});
