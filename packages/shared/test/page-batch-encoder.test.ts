import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PageBatchSchema } from "../src/gen/vulnsub/v1/ingest_pb.ts";
import { encodePageBatch } from "../src/page-batch-encoder.ts";

type Init = Parameters<typeof encodePageBatch>[0];

const reference = (batch: Init) =>
  Buffer.from(toBinary(PageBatchSchema, create(PageBatchSchema, batch)));

const record = (key: string, jsonBytes: number) => ({
  findingKey: key,
  version: "v1",
  json: JSON.stringify({ findingKey: key, raw: "x".repeat(jsonBytes) }),
});

describe("encodePageBatch", () => {
  test("same bytes as protobuf-es", () => {
    const batch: Init = {
      job: { vendor: "tenable", source: "eu-1" },
      fencingToken: 2n ** 64n - 1n,
      seq: 300n,
      cursor: "c\u00e9\u{1f600}",
      records: [record("a", 10), record("b\u00e9", 200), record("c", 70_000)],
    };
    expect(encodePageBatch(batch).equals(reference(batch))).toBe(true);
  });

  test("omits empty fields like protobuf-es", () => {
    const batch: Init = {
      job: {},
      records: [{ findingKey: "", version: "", json: "" }],
    };
    expect(encodePageBatch(batch).equals(reference(batch))).toBe(true);
  });

  test("empty batch is empty bytes", () => {
    expect(encodePageBatch({}).length).toBe(0);
  });

  test("lone surrogate encodes like TextEncoder", () => {
    const batch: Init = { cursor: "a\ud800b", records: [] };
    expect(encodePageBatch(batch).equals(reference(batch))).toBe(true);
  });

  test("created message round-trips", () => {
    const message = create(PageBatchSchema, {
      seq: 5n,
      records: [record("k", 50)],
    });
    const decoded = fromBinary(PageBatchSchema, encodePageBatch(message));
    expect(decoded.records[0]?.json).toBe(message.records[0]?.json);
  });

  test("out of range token goes through protobuf-es", () => {
    expect(() => encodePageBatch({ fencingToken: -1n })).toThrow();
  });
});
