// A findings log on a full disk: every write fails with ENOSPC. The
// flusher must report NOT_SERVING with the error while the newest group
// commit failed, and SERVING again after the next one succeeds.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { checkHealth, ingestProto } from "@vulnsub/shared";
import { openJournalFile, type JournalFile } from "../src/journal-file.ts";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
  startTestFlusher,
} from "./helpers.ts";

// Real servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

const INGEST_SERVICE = ingestProto.Ingest.typeName;

let dataDir: string;
let running: Awaited<ReturnType<typeof startTestFlusher>> | undefined;
/** While true, every write to the log fails with ENOSPC. */
let diskFull = false;

afterEach(async () => {
  running?.client.close();
  await running?.flusher.stop();
  await removeDir(dataDir);
  running = undefined;
  diskFull = false;
});

async function fullDisk(path: string): Promise<JournalFile> {
  const real = await openJournalFile(path);
  return {
    write: async (bytes, position) => {
      if (!diskFull) return real.write(bytes, position);
      throw Object.assign(
        new Error("ENOSPC: no space left on device, write"),
        { code: "ENOSPC" },
      );
    },
    datasync: () => real.datasync(),
    truncate: (lengthBytes) => real.truncate(lengthBytes),
    close: () => real.close(),
  };
}

async function start() {
  dataDir = await createTempDir();
  running = await startTestFlusher(dataDir, {
    env: { METRICS_LISTEN: "127.0.0.1:0" },
    openFile: fullDisk,
  });
  await running.flusher.ready;
  return running;
}

async function probe() {
  const flusher = running!.flusher;
  const response = await fetch(`http://${flusher.metricsAddress}/healthz`);
  const body = (await response.json()) as Record<string, unknown>;
  const metrics = await (
    await fetch(`http://${flusher.metricsAddress}/metrics`)
  ).text();
  return {
    status: response.status,
    reason: String(body.reason),
    server: await checkHealth(flusher.address),
    ingest: await checkHealth(flusher.address, INGEST_SERVICE),
    serving: /^vulnsub_flusher_serving (\d)/m.exec(metrics)?.[1],
  };
}

const send = (key: string) =>
  sendBatches(running!.client, [makeBatch(1, [makeRecord(key)])]);

describe("flusher health on a full disk", () => {
  test("ENOSPC write turns NOT_SERVING", async () => {
    await start();
    diskFull = true;

    const outcome = await send("a");
    const report = await probe();

    expect(outcome.error).not.toBeNull();
    expect(report.status).toBe(503);
    // The probe may land while the writer still truncates the failed
    // write back, which reports the same failure with another prefix.
    expect(report.reason).toMatch(
      /^(findings log write failed|truncating the findings log after a failed write): /,
    );
    expect(report.reason).toContain("ENOSPC");
    expect(report.reason).toMatch(/at \d{4}-\d\d-\d\dT/);
    expect(report.server).toBe("NOT_SERVING");
    expect(report.ingest).toBe("NOT_SERVING");
    expect(report.serving).toBe("0");
  });

  test("next commit turns SERVING again", async () => {
    const flusher = await start();
    diskFull = true;
    await send("a");
    diskFull = false;

    const outcome = await send("b");
    const report = await probe();
    const changes = flusher.lines
      .filter((line) => line.event === "health.changed")
      .map((line) => line.healthy);

    expect(outcome.acks.length).toBe(1);
    expect(report.status).toBe(200);
    expect(report.reason).toBe("serving");
    expect(report.server).toBe("SERVING");
    expect(report.ingest).toBe("SERVING");
    expect(report.serving).toBe("1");
    expect(changes).toEqual([false, true]);
  });

  test("repeated ENOSPC logs write_failed once", async () => {
    const flusher = await start();
    diskFull = true;

    for (const key of ["a", "b", "c", "d"]) await send(key);
    const count = (event: string) =>
      flusher.lines.filter((line) => line.event === event).length;

    expect(count("journal.write_failed")).toBe(1);
    expect(count("journal.truncated")).toBe(1);
    expect(count("stream.rejected")).toBe(1);
  });
});
