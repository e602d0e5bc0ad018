import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { appendFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { createIngestClient, type IngestClient } from "@vulnsub/shared";
import { spawnFlusher, type FlusherProcess } from "./flusher-process.ts";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
} from "./helpers.ts";

// Real processes, servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

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

const logPath = () => join(dataDir, "vulnerabilities.jsonl");
const readLines = async () =>
  (await readFile(logPath(), "utf8")).split("\n").filter((line) => line !== "");

async function start(env: Record<string, string> = {}) {
  const flusher = await spawnFlusher(dataDir, env);
  processes.push(flusher);
  await flusher.waitForEvent("flusher.serving");
  const client = createIngestClient(flusher.address);
  clients.push(client);
  return { flusher, client };
}

describe("torn tail", () => {
  test("partial last line is cut", async () => {
    const good = [makeRecord("a").json, makeRecord("b").json];
    await writeFile(logPath(), `${good.join("\n")}\n{"vendor":"qua`);
    const { flusher } = await start();
    const cut = await flusher.waitForEvent("journal.tail_truncated");
    expect(cut.level).toBe("warn");
    expect(cut.cutBytes).toBe(14);
    expect(await readLines()).toEqual(good);
  });

  test("invalid last line is cut", async () => {
    const good = makeRecord("a").json;
    await writeFile(logPath(), `${good}\n\0\0\0\0garbage\n`);
    const { flusher } = await start();
    const cut = await flusher.waitForEvent("journal.tail_truncated");
    expect(cut.linesCut).toBe(1);
    expect(await readLines()).toEqual([good]);
  });

  test("corrupt middle line stops the start", async () => {
    const good = makeRecord("a").json;
    await writeFile(logPath(), `not json\n${good}\n`);
    const flusher = await spawnFlusher(dataDir);
    processes.push(flusher);
    const failed = await flusher.waitForEvent("flusher.recovery_failed");
    expect(String(failed.msg)).toContain("cannot recover");
    expect(JSON.stringify(failed.err)).toContain("line at byte 0");
    expect(await flusher.process.exited).toBe(1);
  });
});

describe("restart", () => {
  test("dedup survives SIGTERM restart", async () => {
    const first = await start();
    const batch = makeBatch(1, [makeRecord("a"), makeRecord("b")], { cursor: "p1" });
    await sendBatches(first.client, [batch]);
    expect(await first.flusher.kill("SIGTERM")).toBe(0);
    expect(first.flusher.lines.map((line) => line.event)).toContain("snapshot.written");

    const second = await start();
    const again = await sendBatches(second.client, [batch]);
    const state = await second.client.getJobState({ job: { vendor: "qualys", source: "default" } });
    expect(again.acks[0]?.written).toBe(0);
    expect(again.acks[0]?.duplicates).toBe(2);
    expect(state.cursor).toBe("p1");
    expect(state.writtenTotal).toBe(2n);
  });

  test("dedup survives SIGKILL restart", async () => {
    const first = await start();
    const batch = makeBatch(1, [makeRecord("a"), makeRecord("b")]);
    await sendBatches(first.client, [batch]);
    await first.flusher.kill("SIGKILL");

    const second = await start();
    const again = await sendBatches(second.client, [batch]);
    expect(again.acks[0]?.written).toBe(0);
    expect(await readLines()).toHaveLength(2);
  });

  test("stale token rejected after restart", async () => {
    const first = await start();
    await first.client.getJobState({ job: { vendor: "qualys", source: "default" }, fencingToken: 8n });
    await first.flusher.kill("SIGKILL");

    const second = await start();
    const outcome = await sendBatches(second.client, [
      makeBatch(1, [makeRecord("a")], { token: 7n }),
    ]);
    expect(outcome.error?.code).toBe(status.FAILED_PRECONDITION);
    expect(outcome.error?.details).toContain("newest token 8");
  });

  test("SIGTERM logs each step and exits 0", async () => {
    const { flusher } = await start();
    expect(await flusher.kill("SIGTERM")).toBe(0);
    const events = flusher.lines.map((line) => line.event);
    for (const event of [
      "flusher.stopping",
      "flusher.streams_closed",
      "state.written",
      "journal.closed",
      "flusher.stopped",
    ]) {
      expect(events).toContain(event);
    }
  });

  test("second flusher on one log fails", async () => {
    await start();
    const second = await spawnFlusher(dataDir, {}, false);
    processes.push(second);
    const exitCode = await second.process.exited;
    const failed = await second.waitForEvent("flusher.failed");
    expect(exitCode).toBe(1);
    expect(String(failed.msg)).toContain("is locked by process");
  });
});

describe("snapshot", () => {
  test("corrupt snapshot falls back to rebuild", async () => {
    const first = await start();
    await sendBatches(first.client, [makeBatch(1, [makeRecord("a")])]);
    await first.flusher.kill("SIGTERM");
    const snapshotPath = `${logPath()}.dedup`;
    const bytes = await readFile(snapshotPath);
    bytes[60] = (bytes[60] ?? 0) ^ 0xff;
    await writeFile(snapshotPath, bytes);

    const second = await start();
    const rejected = await second.flusher.waitForEvent("snapshot.rejected");
    const again = await sendBatches(second.client, [makeBatch(1, [makeRecord("a")])]);
    expect(rejected.reason).toBe("checksum mismatch");
    expect(again.acks[0]?.written).toBe(0);
  });

  test("snapshot of another log is not used", async () => {
    const first = await start();
    await sendBatches(first.client, [makeBatch(1, [makeRecord("a"), makeRecord("b")])]);
    await first.flusher.kill("SIGTERM");
    // Same size, other keys: only the log check window can tell.
    await writeFile(logPath(), `${makeRecord("c").json}\n${makeRecord("d").json}\n`);
    await rm(`${logPath()}.state.json`);

    const second = await start();
    const rejected = await second.flusher.waitForEvent("snapshot.rejected");
    const outcome = await sendBatches(second.client, [
      makeBatch(1, [makeRecord("a"), makeRecord("c")]),
    ]);
    expect(String(rejected.reason)).toContain("differ from the snapshot");
    expect(outcome.acks[0]?.written).toBe(1);
    expect(outcome.acks[0]?.duplicates).toBe(1);
  });

  test("tail past the snapshot is scanned", async () => {
    const first = await start();
    await sendBatches(first.client, [makeBatch(1, [makeRecord("a")])]);
    await first.flusher.kill("SIGTERM");
    await appendFile(logPath(), `${makeRecord("b").json}\n`);

    const second = await start();
    const recovered = await second.flusher.waitForEvent("journal.recovered");
    const outcome = await sendBatches(second.client, [
      makeBatch(1, [makeRecord("a"), makeRecord("b")]),
    ]);
    expect(recovered.fromSnapshot).toBe(true);
    expect(recovered.scannedBytes).toBe(makeRecord("b").json.length + 1);
    expect(outcome.acks[0]?.duplicates).toBe(2);
  });
});
