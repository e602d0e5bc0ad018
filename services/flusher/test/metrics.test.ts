import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
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
  running = await startTestFlusher(dataDir, {
    env: { METRICS_LISTEN: "127.0.0.1:0" },
  });
  await running.flusher.ready;
});

afterEach(async () => {
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

async function scrape(path: string) {
  const response = await fetch(`http://${running.flusher.metricsAddress}${path}`);
  return { status: response.status, text: await response.text() };
}

describe("metrics server", () => {
  test("/metrics counts writes and rejects", async () => {
    await sendBatches(running.client, [makeBatch(1, [makeRecord("a"), makeRecord("a")])]);
    await sendBatches(running.client, [makeBatch(5, [])]);
    const { status, text } = await scrape("/metrics");
    expect(status).toBe(200);
    expect(text).toContain(
      'vulnsub_flusher_findings_written_total{vendor="qualys",source="default"} 1',
    );
    expect(text).toContain(
      'vulnsub_flusher_findings_duplicate_total{vendor="qualys",source="default"} 1',
    );
    expect(text).toContain('vulnsub_flusher_batches_rejected_total{code="INVALID_ARGUMENT"} 1');
    expect(text).toContain("vulnsub_flusher_dedup_keys 1");
    expect(text).toContain("vulnsub_flusher_batches_in_flight 0");
    expect(text).toContain("vulnsub_flusher_ack_latency_seconds_count 1");
    expect(text).toContain("vulnsub_flusher_fsync_duration_seconds_count 1");
    expect(text).toMatch(/vulnsub_flusher_log_bytes [1-9]/);
  });

  test("/healthz is 200 when serving", async () => {
    expect((await scrape("/healthz")).status).toBe(200);
    expect((await scrape("/nope")).status).toBe(404);
  });

  test("/healthz is 503 while recovering", async () => {
    const otherDir = await createTempDir();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const other = await startTestFlusher(otherDir, {
      env: { METRICS_LISTEN: "127.0.0.1:0" },
      beforeRecovery: () => gate,
    });
    const url = `http://${other.flusher.metricsAddress}/healthz`;
    const before = (await fetch(url)).status;
    release();
    await other.flusher.ready;
    const after = (await fetch(url)).status;
    other.client.close();
    await other.flusher.stop();
    await removeDir(otherDir);
    expect(before).toBe(503);
    expect(after).toBe(200);
  });
});
