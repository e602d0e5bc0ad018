import {
  afterAll,
  beforeAll,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import type { ingestProto, PageBatchInit } from "@vulnsub/shared";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
  startTestFlusher,
} from "./helpers.ts";

// Real processes, servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

const MAX_RECORD_BYTES = 4096;
let dataDir: string;
let running: Awaited<ReturnType<typeof startTestFlusher>>;

beforeAll(async () => {
  dataDir = await createTempDir();
  running = await startTestFlusher(dataDir, {
    env: { MAX_RECORD_BYTES: String(MAX_RECORD_BYTES) },
  });
  await running.flusher.ready;
});

afterAll(async () => {
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

const record = (json: string, findingKey = "a", version = "v1") =>
  ({ findingKey, version, json }) as ingestProto.FindingRecord;

const envelope = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    vendor: "qualys",
    source: "default",
    findingKey: "a",
    version: "v1",
    ...fields,
  });

// Each case: the batch, then the parts its error message must contain.
const cases: [string, PageBatchInit, string[]][] = [
  ["missing job", { seq: 1n, fencingToken: 1n, records: [] }, ["job: missing", "seq 1"]],
  [
    "unknown vendor",
    makeBatch(1, [], { job: { vendor: "nessus", source: "default" } }),
    ["job", "invalid vendor", "nessus"],
  ],
  [
    "invalid source",
    makeBatch(1, [], { job: { vendor: "qualys", source: "../etc" } }),
    ["job", "invalid source", "../etc"],
  ],
  [
    "empty finding key",
    makeBatch(1, [record(envelope(), "")]),
    ["qualys:default", "seq 1", "records[0].finding_key: empty"],
  ],
  [
    "empty version",
    makeBatch(1, [record(envelope(), "a", "")]),
    ["qualys:default", "records[0].version: empty"],
  ],
  ["json array", makeBatch(1, [record("[1]")]), ["records[0].json", "an array"]],
  ["json string", makeBatch(1, [record('"text"')]), ["records[0].json", "a string"]],
  ["json invalid", makeBatch(1, [record("{")]), ["records[0].json: invalid JSON"]],
  [
    "two json objects",
    makeBatch(1, [record(`${envelope()}${envelope()}`)]),
    ["records[0].json: invalid JSON"],
  ],
  [
    "json with newline",
    makeBatch(1, [record(JSON.stringify(JSON.parse(envelope()), null, 1))]),
    ["records[0].json", "newline"],
  ],
  [
    "record over the limit",
    makeBatch(1, [record(envelope({ raw: "x".repeat(MAX_RECORD_BYTES) }))]),
    ["records[0].json", `over the limit of ${MAX_RECORD_BYTES}`],
  ],
  [
    "identity mismatch",
    makeBatch(1, [record(envelope({ findingKey: "b" }))]),
    ["records[0].json.findingKey", '"b"', '"a"'],
  ],
  [
    "duplicated identity field",
    makeBatch(1, [record(`{"vendor":"qualys","source":"default","findingKey":"a","version":"v1","version":"v2"}`)]),
    ["records[0].json.version"],
  ],
  ["seq not starting at 1", makeBatch(2, [makeRecord("a")]), ["seq 2", "seq: expected 1"]],
];

describe("batch rejection", () => {
  for (const [name, batch, parts] of cases) {
    test(name, async () => {
      const outcome = await sendBatches(running.client, [batch]);
      expect(outcome.acks).toHaveLength(0);
      expect(outcome.error?.code).toBe(status.INVALID_ARGUMENT);
      for (const part of parts) expect(outcome.error?.details).toContain(part);
    });
  }

  test("earlier acks stay, bad batch not written", async () => {
    const job = { vendor: "tenable", source: "keep" };
    const good = makeRecord("good", "v1", { job });
    const alsoGood = makeRecord("also-good", "v1", { job });
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [good], { job, cursor: "c1" }),
      makeBatch(2, [alsoGood, record("[]")], { job, cursor: "c2" }),
      makeBatch(3, [makeRecord("after", "v1", { job })], { job }),
    ]);
    const log = await readFile(join(dataDir, "vulnerabilities.jsonl"), "utf8");
    expect(outcome.acks.map((ack) => ack.seq)).toEqual([1n]);
    expect(outcome.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(outcome.error?.details).toContain("seq 2 of tenable:keep");
    expect(log).toContain('"findingKey":"good"');
    expect(log).not.toContain("also-good");
    expect(log).not.toContain('"findingKey":"after"');
  });

  test("seq gap is rejected after earlier acks", async () => {
    const job = { vendor: "rapid7", source: "gap" };
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("x", "v1", { job })], { job }),
      makeBatch(3, [makeRecord("y", "v1", { job })], { job }),
    ]);
    expect(outcome.acks).toHaveLength(1);
    expect(outcome.error?.details).toContain("seq 3 of rapid7:gap: seq: expected 2");
  });

  test("GetJobState without job is rejected", async () => {
    const error = await running.client.getJobState({}).catch((caught) => caught);
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain("job: missing");
  });
});
