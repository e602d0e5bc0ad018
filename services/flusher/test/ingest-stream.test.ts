import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
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

let dataDir: string;
let running: Awaited<ReturnType<typeof startTestFlusher>>;

beforeEach(async () => {
  dataDir = await createTempDir();
  running = await startTestFlusher(dataDir);
  await running.flusher.ready;
});

afterEach(async () => {
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

const logPath = () => join(dataDir, "vulnerabilities.jsonl");

async function readLogLines(): Promise<string[]> {
  const text = await readFile(logPath(), "utf8");
  return text.split("\n").filter((line) => line !== "");
}

describe("stream acks", () => {
  test("ack means the bytes are in the file", async () => {
    const records = [makeRecord("a"), makeRecord("b")];
    const call = running.client.stream();
    const ack = await new Promise<{ seq: bigint; written: number }>((resolve) => {
      call.once("data", resolve);
      call.write(makeBatch(1, records, { cursor: "page-1" }));
    });

    // Read through a separate file descriptor, as another process would.
    const handle = await open(logPath(), "r");
    const text = (await handle.readFile()).toString("utf8");
    await handle.close();
    const ended = new Promise((resolve) => call.on("end", resolve));
    call.on("error", () => undefined);
    call.end();
    await ended;
    expect(ack.seq).toBe(1n);
    expect(ack.written).toBe(2);
    expect(text).toBe(`${records[0]?.json}\n${records[1]?.json}\n`);
  });

  test("acks come in seq order with cursors", async () => {
    const batches = Array.from({ length: 20 }, (_, i) =>
      makeBatch(i + 1, [makeRecord(`k${i}`)], { cursor: `c${i + 1}` }),
    );
    const outcome = await sendBatches(running.client, batches);
    expect(outcome.error).toBeNull();
    expect(outcome.acks.map((ack) => Number(ack.seq))).toEqual(
      batches.map((_, i) => i + 1),
    );
    expect(outcome.acks.at(-1)?.cursor).toBe("c20");
  });

  test("empty batch moves the cursor", async () => {
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [], { cursor: "watermark-1" }),
    ]);
    const state = await running.client.getJobState({ job: { vendor: "qualys", source: "default" } });
    expect(outcome.acks[0]?.written).toBe(0);
    expect(outcome.acks[0]?.cursor).toBe("watermark-1");
    expect(state.cursor).toBe("watermark-1");
  });
});

describe("dedup", () => {
  test("duplicate within a batch is written once", async () => {
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("a"), makeRecord("a"), makeRecord("b")]),
    ]);
    expect(outcome.acks[0]?.written).toBe(2);
    expect(outcome.acks[0]?.duplicates).toBe(1);
    expect(await readLogLines()).toHaveLength(2);
  });

  test("duplicate across batches is written once", async () => {
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("a")]),
      makeBatch(2, [makeRecord("a"), makeRecord("a", "v2")]),
    ]);
    expect(outcome.acks[1]?.written).toBe(1);
    expect(outcome.acks[1]?.duplicates).toBe(1);
    expect(await readLogLines()).toHaveLength(2);
  });

  test("duplicate across streams is written once", async () => {
    const batch = makeBatch(1, [makeRecord("a"), makeRecord("b")]);
    const [first, second] = await Promise.all([
      sendBatches(running.client, [batch]),
      sendBatches(running.client, [batch]),
    ]);
    const written = (first.acks[0]?.written ?? 0) + (second.acks[0]?.written ?? 0);
    expect(written).toBe(2);
    expect(await readLogLines()).toHaveLength(2);
  });

  test("re-sent batch is acked with written 0", async () => {
    const records = [makeRecord("a"), makeRecord("b"), makeRecord("c")];
    await sendBatches(running.client, [makeBatch(1, records, { cursor: "p1" })]);
    const again = await sendBatches(running.client, [makeBatch(1, records, { cursor: "p1" })]);
    expect(again.error).toBeNull();
    expect(again.acks[0]?.written).toBe(0);
    expect(again.acks[0]?.duplicates).toBe(3);
    expect(again.acks[0]?.cursor).toBe("p1");
    expect(await readLogLines()).toHaveLength(3);
  });

  test("same key in other job is not a duplicate", async () => {
    const emea = { vendor: "qualys", source: "emea" };
    await sendBatches(running.client, [makeBatch(1, [makeRecord("a")])]);
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("a", "v1", { job: emea })], { job: emea }),
    ]);
    expect(outcome.acks[0]?.written).toBe(1);
  });
});

describe("fencing", () => {
  test("stale token is rejected", async () => {
    await running.client.getJobState({ job: { vendor: "qualys", source: "default" }, fencingToken: 5n });
    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("a")], { token: 4n }),
    ]);
    expect(outcome.error?.code).toBe(status.FAILED_PRECONDITION);
    expect(outcome.error?.details).toContain("qualys:default");
    expect(outcome.error?.details).toContain("fencing token 4");
    expect(outcome.error?.details).toContain("newest token 5");
    expect(await readLogLines()).toHaveLength(0);
  });

  test("newer batch token registers it", async () => {
    await sendBatches(running.client, [makeBatch(1, [makeRecord("a")], { token: 9n })]);
    const state = await running.client.getJobState({ job: { vendor: "qualys", source: "default" } });
    expect(state.fencingToken).toBe(9n);
    expect(state.writtenTotal).toBe(1n);
  });

  test("stale GetJobState is rejected", async () => {
    await running.client.getJobState({ job: { vendor: "qualys", source: "default" }, fencingToken: 7n });
    const error = await running.client
      .getJobState({ job: { vendor: "qualys", source: "default" }, fencingToken: 6n })
      .catch((caught: { code: number; details: string }) => caught);
    expect((error as { code: number }).code).toBe(status.FAILED_PRECONDITION);
    expect((error as { details: string }).details).toContain("newest token 7");
  });
});
