import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createIngestClient, type IngestClient, type ingestProto } from "@vulnsub/shared";
import { spawnFlusher, type FlusherProcess } from "./flusher-process.ts";
import {
  createTempDir,
  JOB,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
} from "./helpers.ts";

// Real processes, servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

const BATCHES = 300;
const RECORDS_PER_BATCH = 20;
const WINDOW = 16;

let dataDir: string;
let processes: FlusherProcess[];
let clients: IngestClient[];

beforeEach(async () => {
  dataDir = await createTempDir();
  processes = [];
  clients = [];
});

afterEach(async () => {
  for (const client of clients) client.close();
  for (const flusher of processes) {
    if (flusher.process.exitCode === null) await flusher.kill("SIGKILL");
  }
  await removeDir(dataDir);
});

async function start() {
  const flusher = await spawnFlusher(dataDir, { FLUSH_BATCH_SIZE: "100" });
  processes.push(flusher);
  await flusher.waitForEvent("flusher.serving");
  const client = createIngestClient(flusher.address);
  clients.push(client);
  return { flusher, client };
}

/** Batch n (1-based) of the job: keys k{n}-{i}, cursor "n". */
function batchRecords(n: number): ingestProto.FindingRecord[] {
  return Array.from({ length: RECORDS_PER_BATCH }, (_, i) =>
    makeRecord(`k${n}-${i}`, "v1", { bytes: 300 + ((n * 7 + i) % 50) * 40 }),
  );
}

/**
 * Streams batches firstBatch..BATCHES with a window of unacked batches;
 * kills the flusher once `killAfterAcks` acks arrived. Returns the acked
 * batch numbers.
 */
function streamUntilKilled(
  client: IngestClient,
  flusher: FlusherProcess,
  killAfterAcks: number,
): Promise<number[]> {
  return new Promise((resolve) => {
    const acked: number[] = [];
    const call = client.stream();
    let next = 1;
    const fill = () => {
      while (next <= BATCHES && next - acked.length <= WINDOW) {
        call.write(makeBatch(next, batchRecords(next), { cursor: String(next) }));
        next++;
      }
    };
    call.on("data", (ack: ingestProto.Ack) => {
      acked.push(Number(ack.seq));
      if (acked.length === killAfterAcks) flusher.process.kill("SIGKILL");
      fill();
    });
    call.on("error", () => resolve(acked));
    call.on("end", () => resolve(acked));
    fill();
  });
}

describe("flusher SIGKILL mid-stream", () => {
  test("acked records present exactly once", async () => {
    const first = await start();
    const acked = await streamUntilKilled(first.client, first.flusher, 60);
    await first.flusher.process.exited;
    expect(acked.length).toBeGreaterThanOrEqual(60);

    // Resume as a poller does: from the durable cursor, new stream.
    const second = await start();
    const state = await second.client.getJobState({ job: JOB, fencingToken: 2n });
    const resumeFrom = Number(state.cursor) + 1;
    expect(Number(state.cursor)).toBeGreaterThanOrEqual(Math.max(...acked));

    const rest = [];
    for (let n = resumeFrom; n <= BATCHES; n++) {
      rest.push(makeBatch(n - resumeFrom + 1, batchRecords(n), {
        cursor: String(n),
        token: 2n,
      }));
    }
    const outcome = await sendBatches(second.client, rest);
    expect(outcome.error).toBeNull();

    const lines = (await readFile(join(dataDir, "vulnerabilities.jsonl"), "utf8"))
      .split("\n")
      .filter((line) => line !== "");
    const keys = lines.map((line) => JSON.parse(line).findingKey as string);
    const unique = new Set(keys);
    expect(unique.size).toBe(keys.length);
    expect(keys.length).toBe(BATCHES * RECORDS_PER_BATCH);
    for (const n of acked) {
      expect(unique.has(`k${n}-0`)).toBe(true);
      expect(unique.has(`k${n}-${RECORDS_PER_BATCH - 1}`)).toBe(true);
    }
    const finalState = await second.client.getJobState({ job: JOB });
    expect(finalState.cursor).toBe(String(BATCHES));
    expect(finalState.writtenTotal).toBe(BigInt(BATCHES * RECORDS_PER_BATCH));
  }, 60_000);
});
