import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ingestProto, type PageBatchInit } from "@vulnsub/shared";
import { prepareBatch } from "../src/batch-validator.ts";
import { decodePageBatch, type IncomingBatch } from "../src/page-batch-decoder.ts";
import { makeBatch, makeRecord } from "./helpers.ts";

const encode = (batch: PageBatchInit) =>
  Buffer.from(toBinary(ingestProto.PageBatchSchema, create(ingestProto.PageBatchSchema, batch)));

/** The decoded batch with each json as text, to compare with the input. */
function asText(batch: IncomingBatch) {
  return {
    ...batch,
    records: batch.records.map((r) => ({ ...r, json: r.json.toString("utf8") })),
  };
}

// Field 9 as a varint, field 10 as fixed64, field 11 as bytes, field 12
// as fixed32: none of them is in the schema.
const UNKNOWN_FIELDS = Buffer.from([
  0x48, 0x96, 0x01,
  0x51, 1, 2, 3, 4, 5, 6, 7, 8,
  0x5a, 0x02, 0x61, 0x62,
  0x65, 1, 2, 3, 4,
]);

describe("decodePageBatch", () => {
  test("reads every field", () => {
    const records = [
      makeRecord("k1", "v1"),
      makeRecord("k\u00e9-2", "v2", { bytes: 4000 }),
    ];
    const batch = makeBatch(7, records, { token: 2n ** 63n + 5n, cursor: "c\u00e9" });
    expect(asText(decodePageBatch(encode(batch)))).toEqual({
      job: { vendor: "qualys", source: "default" },
      fencingToken: 2n ** 63n + 5n,
      seq: 7n,
      records: records.map(({ findingKey, version, json }) => ({ findingKey, version, json })),
      cursor: "c\u00e9",
    });
  });

  test("defaults for an empty message", () => {
    expect(decodePageBatch(Buffer.alloc(0))).toEqual({
      job: undefined,
      fencingToken: 0n,
      seq: 0n,
      records: [],
      cursor: "",
    });
  });

  test("skips unknown fields", () => {
    const bytes = Buffer.concat([UNKNOWN_FIELDS, encode(makeBatch(3, [makeRecord("k")]))]);
    expect(decodePageBatch(bytes).seq).toBe(3n);
  });

  test("later scalar wins and job merges", () => {
    const first = encode({ job: { vendor: "qualys", source: "" }, seq: 1n, cursor: "a" });
    const second = encode({ job: { vendor: "", source: "eu" }, seq: 2n, cursor: "b" });
    const batch = decodePageBatch(Buffer.concat([first, second]));
    expect(batch.job).toEqual({ vendor: "qualys", source: "eu" });
    expect(batch.seq).toBe(2n);
    expect(batch.cursor).toBe("b");
  });

  test("json is a view of the message", () => {
    const bytes = encode(makeBatch(1, [makeRecord("k")]));
    const json = decodePageBatch(bytes).records[0]?.json;
    expect(json?.buffer).toBe(bytes.buffer);
  });

  test("truncated message throws", () => {
    const bytes = encode(makeBatch(1, [makeRecord("k")]));
    expect(() => decodePageBatch(bytes.subarray(0, bytes.length - 3))).toThrow(
      /past the end/,
    );
  });

  test("group wire type throws", () => {
    expect(() => decodePageBatch(Buffer.from([0x4b]))).toThrow(/wire type 3/);
  });
});

describe("prepareBatch", () => {
  const prepare = (batch: PageBatchInit) =>
    prepareBatch(decodePageBatch(encode(batch)), 1n, 1 << 20);

  test("lines are the records' JSON, one per line", () => {
    const records = [makeRecord("a"), makeRecord("b\u00e9")];
    const prepared = prepare(makeBatch(1, records));
    const expected = records.map((r) => `${r.json}\n`).join("");
    expect(prepared.lines.toString("utf8")).toBe(expected);
  });

  test("record ranges cover each line", () => {
    const records = [makeRecord("a"), makeRecord("b")];
    const prepared = prepare(makeBatch(1, records));
    const second = prepared.records[1];
    const line = prepared.lines.toString("utf8", second?.startByte, second?.endByte);
    expect(line).toBe(`${records[1]?.json}\n`);
  });

  test("invalid UTF-8 json is rejected", () => {
    const record = makeRecord("a");
    const bytes = encode(makeBatch(1, [record]));
    // Turns the "a" of findingKey inside the json into a lone 0xff byte.
    const at = bytes.indexOf(Buffer.from('"findingKey":"a"')) + 14;
    bytes[at] = 0xff;
    const decoded = decodePageBatch(bytes);
    expect(() => prepareBatch(decoded, 1n, 1 << 20)).toThrow(/not valid UTF-8/);
  });

  test("json with a newline is rejected", () => {
    const record = { ...makeRecord("a"), json: '{"vendor":\n"qualys"}' };
    expect(() => prepare(makeBatch(1, [record]))).toThrow(/newline/);
  });
});
