// Flusher throughput and ack latency: `bun run bench flusher [--smoke]
// [--records N] [--streams 1,4,8] [--cpu-prof DIR]`.
//
// For 1, 4 and 8 concurrent streams (one connection each), the bench sends
// the same findings through gRPC to a flusher child process, which dedups,
// appends JSON Lines and fsyncs. Findings are 1-5 KB, and 1 % are
// 100-500 KB. Streams send batches of 500 records with at most 8 unacked,
// the poller's defaults (MAX_BATCH_RECORDS, MAX_UNACKED_BATCHES). Before
// each run the bench appends the same bytes raw, one write and one
// fdatasync per FLUSH_BATCH_SIZE records, buffers built before the clock
// starts, and prints the ratio. Each flusher first takes a warm-up of
// other findings, not timed. Then the bench measures ack latency at light
// load (one stream, one batch in flight, from write to ack) against one
// fdatasync and one raw write plus fdatasync of a batch.
//
// --cpu-prof DIR runs each flusher with `bun --cpu-prof` and prints where
// its samples went. Every flusher runs in its own process group and is
// killed when the bench exits, fails or is interrupted.
import { readdirSync, rmSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import {
  createIngestClient,
  type IngestClient,
  type PageBatchInit,
} from "@vulnsub/shared";
import { handleStopSignals } from "../lib/processes.ts";
import { parseFlags } from "./lib/cli.ts";
import { printCpuProfiles } from "./lib/cpu-profile.ts";
import { startFlusher } from "./lib/services.ts";

const USAGE =
  "usage: bun run bench flusher [--smoke] [--records N] " +
  "[--streams 1,4,8] [--cpu-prof DIR]";
const flags = parseFlags(
  process.argv.slice(2),
  { smoke: "boolean", records: "integer", streams: "string", "cpu-prof": "string" },
  USAGE,
);
const smoke = flags.smoke;
const RECORDS =
  flags.records ?? (smoke ? 2_000 : Number(process.env.BENCH_RECORDS ?? 100_000));
const STREAM_COUNTS = (flags.streams ?? "1,4,8").split(",").map(Number);
const PROFILE_DIR = flags["cpu-prof"];
const RECORDS_PER_BATCH = 500;
const WINDOW_BATCHES = 8;
const FLUSH_BATCH_SIZE = 500;
const WARMUP_BATCHES = 4;
const LATENCY_BATCHES = smoke ? 10 : 200;

type Record = { findingKey: string; version: string; json: string };
let flushers = 0;

// Temp folders still present when the bench exits, interrupted or not.
const tempDirs = new Set<string>();
process.on("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
handleStopSignals({
  onStop: () => process.exit(130),
  onForce: () => undefined,
});
printMachine();
const records = makeRecords(RECORDS, "bench");
const warmup = makeRecords(WARMUP_BATCHES * RECORDS_PER_BATCH, "warmup");
const totalBytes = records.reduce((sum, r) => sum + Buffer.byteLength(r.json) + 1, 0);
console.log(
  `data: ${RECORDS} findings, ${(totalBytes / 2 ** 20).toFixed(1)} MiB, ` +
    `${RECORDS_PER_BATCH} per batch, ${WINDOW_BATCHES} unacked batches per ` +
    `stream, FLUSH_BATCH_SIZE ${FLUSH_BATCH_SIZE}\n`,
);

console.log("streams  findings/s  raw findings/s  ratio  ack p50 ms  ack p99 ms");
for (const streams of STREAM_COUNTS) {
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
const batchMiB = raw.bytes / LATENCY_BATCHES / 2 ** 20;
console.log(
  `\nlight load (1 stream, 1 batch of ${FLUSH_BATCH_SIZE} findings, ` +
    `${batchMiB.toFixed(1)} MiB, in flight; ${LATENCY_BATCHES} batches):`,
);
console.log(
  `  raw: fdatasync p50 ${raw.syncP50Ms.toFixed(2)} ms, ` +
    `write + fdatasync p50 ${raw.groupP50Ms.toFixed(2)} ms`,
);
console.log(
  `  ack latency: p50 ${light.p50Ms.toFixed(2)} ms (${(light.p50Ms / raw.syncP50Ms).toFixed(2)} x fsync), ` +
    `p99 ${light.p99Ms.toFixed(2)} ms (${(light.p99Ms / raw.syncP50Ms).toFixed(2)} x fsync; goal <= 3, ` +
    `${(light.p99Ms / raw.groupP50Ms).toFixed(2)} x write + fsync)`,
);
if (PROFILE_DIR) {
  for (const folder of readdirSync(PROFILE_DIR).sort()) {
    printCpuProfiles(join(PROFILE_DIR, folder));
  }
}
process.exit(0);

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
  const groups: Buffer[] = [];
  for (let i = 0; i < data.length; i += groupSize) {
    const lines = data.slice(i, i + groupSize).map((r) => `${r.json}\n`);
    groups.push(Buffer.from(lines.join("")));
  }
  const dir = await mkdtemp(join(tmpdir(), "vulnsub-bench-raw-"));
  tempDirs.add(dir);
  const handle = await open(join(dir, "raw.jsonl"), "w");
  const syncs: number[] = [];
  const writes: number[] = [];
  const started = performance.now();
  let offset = 0;
  for (const bytes of groups) {
    const writeStarted = performance.now();
    await handle.write(bytes, 0, bytes.length, offset);
    offset += bytes.length;
    const syncStarted = performance.now();
    await handle.datasync();
    syncs.push(performance.now() - syncStarted);
    writes.push(performance.now() - writeStarted);
  }
  const seconds = (performance.now() - started) / 1000;
  await handle.close();
  await rm(dir, { recursive: true, force: true });
  syncs.sort((a, b) => a - b);
  writes.sort((a, b) => a - b);
  return {
    perSecond: data.length / seconds,
    bytes: offset,
    syncP50Ms: percentile(syncs, 0.5),
    groupP50Ms: percentile(writes, 0.5),
  };
}

/** Starts a flusher in a fresh folder and sends it the warm-up findings. */
async function startWarmFlusher(label: string) {
  const dir = await mkdtemp(join(tmpdir(), `vulnsub-bench-${label}-`));
  tempDirs.add(dir);
  // Each flusher's profile goes to a folder of its own, as all are named
  // flusher.cpuprofile.
  const profileDir = PROFILE_DIR && join(PROFILE_DIR, `${++flushers}-${label}`);
  const { service, address } = await startFlusher({
    dataDir: dir,
    logPath: join(dir, "vulnerabilities.jsonl"),
    flushBatchSize: FLUSH_BATCH_SIZE,
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    onText: (name, line) => console.error(`${name}: ${line}`),
  });
  const client = createIngestClient(address);
  await runStream(client, warmup, RECORDS_PER_BATCH, WINDOW_BATCHES, []);
  client.close();
  const stop = async () => {
    await service.stop(30_000);
    await rm(dir, { recursive: true, force: true });
  };
  return { address, stop };
}

/** Splits the records over `streams` streams and sends them all. */
async function throughput(data: Record[], streams: number) {
  const flusher = await startWarmFlusher("flusher");
  // One connection per stream, as each poller process has its own.
  const clients = Array.from({ length: streams }, () =>
    createIngestClient(flusher.address, {
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
  await flusher.stop();
  latencies.sort((a, b) => a - b);
  return {
    perSecond: data.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

async function lightLoadLatency(data: Record[]) {
  const flusher = await startWarmFlusher("latency");
  const client = createIngestClient(flusher.address);
  const latencies: number[] = [];
  await runStream(client, data, FLUSH_BATCH_SIZE, 1, latencies);
  client.close();
  await flusher.stop();
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

/**
 * Streams the records of job tenable:bench with at most `window` unacked
 * batches; pushes each batch's time from write to ack.
 */
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
