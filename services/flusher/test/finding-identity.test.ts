import { describe, expect, test } from "bun:test";
import { fingerprintOf, readFindingIdentity } from "../src/finding-identity.ts";

const read = (text: string) => readFindingIdentity(Buffer.from(text));
const identity = { vendor: "qualys", source: "default", findingKey: "k", version: "v" };

describe("readFindingIdentity", () => {
  test("reads the envelope prefix", () => {
    expect(read(JSON.stringify({ schemaVersion: 1, ...identity, raw: {} }))).toEqual(identity);
  });

  test("skips nested values before the fields", () => {
    const line = JSON.stringify({ raw: { a: [1, "}", { b: "\\\"" }] }, n: null, ...identity });
    expect(read(line)).toEqual(identity);
  });

  test("decodes escaped strings", () => {
    const line = JSON.stringify({ ...identity, findingKey: 'host:1|"x"\u00e9\n' });
    expect(read(line)?.findingKey).toBe('host:1|"x"\u00e9\n');
  });

  test("null for a missing field", () => {
    expect(read(JSON.stringify({ vendor: "qualys", source: "a", findingKey: "k" }))).toBeNull();
  });

  test("null for a non-string field", () => {
    expect(read(JSON.stringify({ ...identity, version: 3 }))).toBeNull();
  });

  test("null for non-objects and garbage", () => {
    for (const text of ["[]", '"x"', "", "\0\0\0", '{"vendor":"q"', "{}"]) {
      expect(read(text)).toBeNull();
    }
  });
});

describe("fingerprintOf", () => {
  test("differs when any field differs", () => {
    const base = fingerprintOf(identity);
    for (const field of Object.keys(identity) as (keyof typeof identity)[]) {
      expect(fingerprintOf({ ...identity, [field]: `${identity[field]}x` })).not.toEqual(base);
    }
  });

  test("field boundaries are unambiguous", () => {
    const a = fingerprintOf({ ...identity, findingKey: "a", version: "bc" });
    const b = fingerprintOf({ ...identity, findingKey: "ab", version: "c" });
    expect(a).not.toEqual(b);
  });

  test("is stable across runs", () => {
    // xxHash64 is a published algorithm: this value must never change, or
    // every dedup snapshot on disk stops matching.
    expect(fingerprintOf(identity)).toEqual({ lo: 999359921, hi: 3804871901 });
  });
});
