// Flusher throughput and ack latency: `bun run bench flusher [--smoke]`.
//
// For 1, 4 and 8 concurrent streams, sends the same findings (1-5 KB, 1 %
// of 100-500 KB) through gRPC to a flusher child process (dedup, JSONL,
// fsync) and compares with a raw append + fdatasync of the same bytes in
// groups of FLUSH_BATCH_SIZE records, run in the same process beforehand.
// Then measures ack latency at light load (one stream, one batch of
// FLUSH_BATCH_SIZE records in flight) against one fdatasync of that size.
import { open, mkdtemp, rm } from "node:fs/promises";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import {
  createIngestClient,
  type IngestClient,
  type PageBatchInit,
} from "@vulnsub/shared";

const smoke = process.argv.includes("--smoke");
if (process.argv.slice(2).some((arg) => arg !== "--smoke")) {
  console.error("usage: bun scripts/bench/flusher.ts [--smoke]");
  process.exit(2);
}
const RECORDS = smoke ? 2_000 : Number(process.env.BENCH_RECORDS ?? 100_000);
const RECORDS_PER_BATCH = 100;
const WINDOW_BATCHES = 8;
const FLUSH_BATCH_SIZE = 500;
const LATENCY_BATCHES = smoke ? 10 : 200;
const MAIN = join(import.meta.dir, "..", "..", "services", "flusher", "src", "main.ts");

type Record = { findingKey: string; version: string; json: string };

printMachine();
const records = makeRecords(RECORDS, "bench");
const totalBytes = records.reduce((sum, r) => sum + Buffer.byteLength(r.json) + 1, 0);
console.log(
  `data: ${RECORDS} findings, ${(totalBytes / 2 ** 20).toFixed(1)} MiB, ` +
    `${RECORDS_PER_BATCH} per batch, ${WINDOW_BATCHES} unacked batches per stream, ` +
    `FLUSH_BATCH_SIZE ${FLUSH_BATCH_SIZE}\n`,
);

console.log("streams  findings/s  raw findings/s  ratio  ack p50 ms  ack p99 ms");
for (const streams of [1, 4, 8]) {
  const raw = await rawAppend(records, FLUSH_BATCH_SIZE);
  const run = await throughput(records, streams);
  console.log(
    `${String(streams).padStart(7)}  ${fmt(run.perSecond, 10)}  ${fmt(raw.perSecond, 14)}  ` +
      `${(run.perSecond / raw.perSecond).toFixed(2).padStart(5)}  ` +
      `${run.p50Ms.toFixed(2).padStart(10)}  ${run.p99Ms.toFixed(2).padStart(10)}`,
  );
}

const latencyRecords = makeRecords(LATENCY_BATCHES * FLUSH_BATCH_SIZE, "latency");
const raw = await rawAppend(latencyRecords, FLUSH_BATCH_SIZE);
const light = await lightLoadLatency(latencyRecords);
console.log(
  `\nlight load (1 stream, 1 batch of ${FLUSH_BATCH_SIZE} in flight, ${LATENCY_BATCHES} batches):`,
);
console.log(`  one fdatasync of ${FLUSH_BATCH_SIZE} findings: p50 ${raw.syncP50Ms.toFixed(2)} ms`);
console.log(
  `  ack latency: p50 ${light.p50Ms.toFixed(2)} ms (${(light.p50Ms / raw.syncP50Ms).toFixed(2)} x fsync), ` +
    `p99 ${light.p99Ms.toFixed(2)} ms (${(light.p99Ms / raw.syncP50Ms).toFixed(2)} x fsync; goal <= 3)`,
);

function printMachine() {
  const cpu = cpus()[0]?.model ?? "unknown";
  console.log(
    `machine: ${cpu}, ${cpus().length} cores, Linux ${release()}, bun ${Bun.version}` +
      (smoke ? " (smoke run: figures are not meaningful)" : ""),
  );
}

function fmt(value: number, width: number): string {
  return Math.round(value).toLocaleString("en-US").padStart(width);
}

/** Findings of 1-5 KB, one in a hundred of 100-500 KB, deterministic. */
function makeRecords(count: number, prefix: string): Record[] {
  let seed = 42;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  return Array.from({ length: count }, (_, i) => {
    const large = i % 100 === 99;
    const bytes = large ? 100_000 + next() * 400_000 : 1_000 + next() * 4_000;
    const findingKey = `asset:${prefix}-${i % 5000}|plugin:${i}|port:443|proto:tcp`;
    const envelope = {
      schemaVersion: 1,
      vendor: "tenable",
      source: "bench",
      findingKey,
      version: (i * 2654435761).toString(16).slice(-16),
      observedAt: "2026-01-01T00:00:00.000Z",
      state: "open",
      raw: { plugin_output: "o".repeat(Math.round(bytes) - 300) },
    };
    return { findingKey, version: envelope.version, json: JSON.stringify(envelope) };
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Appends the lines in groups of `groupSize` with one fdatasync each. */
async function rawAppend(data: Record[], groupSize: number) {
  const dir = await mkdtemp(join(tmpdir(), "vulnsub-bench-raw-"));
  const handle = await open(join(dir, "raw.jsonl"), "w");
  const syncs: number[] = [];
  const started = performance.now();
  let offset = 0;
  for (let i = 0; i < data.length; i += groupSize) {
    const lines = data.slice(i, i + groupSize).map((r) => `${r.json}\n`).join("");
    const bytes = Buffer.from(lines);
    await handle.write(bytes, 0, bytes.length, offset);
    offset += bytes.length;
    const syncStarted = performance.now();
    await handle.datasync();
    syncs.push(performance.now() - syncStarted);
  }
  const seconds = (performance.now() - started) / 1000;
  await handle.close();
  await rm(dir, { recursive: true, force: true });
  syncs.sort((a, b) => a - b);
  return { perSecond: data.length / seconds, syncP50Ms: percentile(syncs, 0.5) };
}

async function startFlusher(dir: string) {
  const child = Bun.spawn(["bun", MAIN], {
    env: {
      ...process.env,
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: dir,
      METRICS_LISTEN: "off",
      FLUSH_BATCH_SIZE: String(FLUSH_BATCH_SIZE),
      LOG_LEVEL: "info",
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const match = /"event":"flusher.serving","address":"([^"]+)"/.exec(text);
    if (match) {
      // Keep reading stdout so the child never blocks on a full pipe.
      void (async () => {
        while (!(await reader.read()).done) {}
      })();
      return { child, address: match[1] as string };
    }
  }
  throw new Error(`flusher exited before serving:\n${text}`);
}

/** Splits the records over `streams` streams and sends them all. */
async function throughput(data: Record[], streams: number) {
  const dir = await mkdtemp(join(tmpdir(), "vulnsub-bench-flusher-"));
  const { child, address } = await startFlusher(dir);
  // One connection per stream, as each poller process has its own.
  const clients = Array.from({ length: streams }, () =>
    createIngestClient(address, {
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    }),
  );
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    clients.map((client, s) => {
      const mine = data.filter((_, i) => Math.floor(i / RECORDS_PER_BATCH) % streams === s);
      return runStream(client, mine, RECORDS_PER_BATCH, WINDOW_BATCHES, latencies);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  child.kill("SIGTERM");
  await child.exited;
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    perSecond: data.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

async function lightLoadLatency(data: Record[]) {
  const dir = await mkdtemp(join(tmpdir(), "vulnsub-bench-latency-"));
  const { child, address } = await startFlusher(dir);
  const client = createIngestClient(address);
  const latencies: number[] = [];
  await runStream(client, data, FLUSH_BATCH_SIZE, 1, latencies);
  client.close();
  child.kill("SIGTERM");
  await child.exited;
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

/** Streams the records with at most `window` unacked batches. */
function runStream(
  client: IngestClient,
  data: Record[],
  perBatch: number,
  window: number,
  latencies: number[],
): Promise<void> {
  return new Promise((resolve, reject) => {
    const batches: PageBatchInit[] = [];
    for (let i = 0; i < data.length; i += perBatch) {
      batches.push({
        job: { vendor: "tenable", source: "bench" },
        fencingToken: 1n,
        seq: BigInt(batches.length + 1),
        records: data.slice(i, i + perBatch),
        cursor: String(batches.length + 1),
      });
    }
    const sentAt: number[] = [];
    let sent = 0;
    let acked = 0;
    const call = client.stream();
    const fill = () => {
      while (sent < batches.length && sent - acked < window) {
        sentAt.push(performance.now());
        call.write(batches[sent] as PageBatchInit);
        sent++;
      }
      if (sent === batches.length && acked === sent) call.end();
    };
    call.on("data", () => {
      latencies.push(performance.now() - (sentAt[acked] as number));
      acked++;
      fill();
    });
    call.on("error", reject);
    call.on("end", resolve);
    fill();
  });
}
