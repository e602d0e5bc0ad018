import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { checkHealth } from "@vulnsub/shared";
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

let dataDir: string;
let running: Awaited<ReturnType<typeof startTestFlusher>> | undefined;

afterEach(async () => {
  running?.client.close();
  await running?.flusher.stop();
  await removeDir(dataDir);
  running = undefined;
});

// Every fdatasync and ftruncate fails, so the first group leaves the
// writer failed for good.
async function brokenDisk(path: string): Promise<JournalFile> {
  const real = await openJournalFile(path);
  const failure = (call: string) =>
    Object.assign(new Error(`EIO: i/o error, ${call}`), { code: "EIO" });
  return {
    write: (bytes, position) => real.write(bytes, position),
    datasync: async () => {
      throw failure("fdatasync");
    },
    truncate: async () => {
      throw failure("ftruncate");
    },
    close: () => real.close(),
  };
}

async function healthz() {
  const url = `http://${running?.flusher.metricsAddress}/healthz`;
  const response = await fetch(url);
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, body };
}

describe("flusher /healthz", () => {
  test("serving flusher reports its state", async () => {
    dataDir = await createTempDir();
    running = await startTestFlusher(dataDir, {
      env: { METRICS_LISTEN: "127.0.0.1:0" },
    });
    await running.flusher.ready;

    const report = await healthz();

    expect(report.status).toBe(200);
    expect(report.body.healthy).toBe(true);
    expect(report.body.reason).toBe("serving");
    expect(report.body.grpcStatus).toBe("SERVING");
    expect(report.body.journal).toBe("ready");
  });

  test("failed log turns NOT_SERVING", async () => {
    dataDir = await createTempDir();
    running = await startTestFlusher(dataDir, {
      env: { METRICS_LISTEN: "127.0.0.1:0" },
      openFile: brokenDisk,
    });
    await running.flusher.ready;

    const outcome = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("a")]),
    ]);
    const report = await healthz();
    const grpcStatus = await checkHealth(running.flusher.address);
    const metrics = await (
      await fetch(`http://${running.flusher.metricsAddress}/metrics`)
    ).text();

    expect(outcome.error).not.toBeNull();
    expect(report.status).toBe(503);
    expect(report.body.reason).toContain("findings log writes failed");
    expect(report.body.journal).toBe("failed");
    expect(grpcStatus).toBe("NOT_SERVING");
    expect(metrics).toContain("vulnsub_flusher_serving 0");
    const changed = running.lines.filter(
      (line) => line.event === "health.changed",
    );
    expect(changed.length).toBe(1);
    expect(changed[0]?.level).toBe("error");
  });
});
