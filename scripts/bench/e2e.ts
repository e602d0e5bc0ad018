// Full Tenable sync end to end: `bun run bench e2e [--smoke] [--findings N]`.
//
// A Tenable simulator, the flusher and one poller run as child processes
// on loopback with the rate limit lifted. The poller exports every finding
// (one vulns export, chunks of 500 assets by default) and the
// flusher appends them to a fresh log. Prints findings per second from the
// poller's start to its cycle.completed event, the peak RSS (VmHWM) and
// CPU time of each process, the log size, and checks that the log
// contains each served finding version exactly once.
//
// Findings have the simulator's sizes: about 1.7 KB of vendor JSON (3 KB
// per log line), and 0.2 % with a 100-500 KB plugin output. Before the
// run, the bench checks that the disk has three times the estimated log
// size free and scales the finding count down when it does not.
//
// Options:
//   --findings-per-asset N  findings per asset (default 50)
//   --chunk-assets N        assets per export chunk (default 500)
//   --cpu-prof              write and summarise Bun CPU profiles of the
//                           three children (their RSS is then higher)
//   --keep                  keep the data folder
import { join } from "node:path";
import { fetchGroundTruth } from "../lib/ground-truth.ts";
import { stopServices, type ServiceProcess } from "../lib/processes.ts";
import {
  fail,
  formatBytes,
  formatCount,
  formatSeconds,
  parseFlags,
} from "./lib/cli.ts";
import { printCpuProfiles } from "./lib/cpu-profile.ts";
import { checkFindingsLog, describeLogCheck } from "./lib/log-check.ts";
import { freeDiskBytes, printMachine } from "./lib/machine.ts";
import {
  createProcessSampler,
  type ProcessStats,
} from "./lib/process-stats.ts";
import { deleteKeysWithPrefix } from "../lib/ensure-redis.ts";
import { createRunDir } from "./lib/run-dir.ts";
import {
  startFlusher,
  startPoller,
  startSimulatorProcess,
  waitForCycle,
} from "./lib/services.ts";

const USAGE =
  "usage: bun run bench e2e [--smoke] [--findings N] " +
  "[--findings-per-asset N] [--chunk-assets N] [--cpu-prof] [--keep] " +
  "[--redis-url URL]";
const FULL_FINDINGS = 1_000_000;
const SMOKE_FINDINGS = 5_000;
const DEFAULT_FINDINGS_PER_ASSET = 50;
// Assets per export chunk: the poller's default num_assets.
const DEFAULT_CHUNK_ASSETS = 500;
// Estimate of a log line of the simulator's Tenable findings, large outputs
// included: runs of 5,000 to 1,000,000 findings (seed 1) wrote 3.0-3.1 KB
// per line, rounded up here.
const ESTIMATED_LINE_BYTES = 3_200;
const DISK_FACTOR = 3;
const SEED = 1;
const SAMPLE_INTERVAL_MS = 500;

const flags = parseFlags(
  process.argv.slice(2),
  {
    smoke: "boolean",
    findings: "integer",
    "findings-per-asset": "integer",
    "chunk-assets": "integer",
    "cpu-prof": "boolean",
    keep: "boolean",
    "redis-url": "string",
  },
  USAGE,
);
const redisUrl =
  flags["redis-url"] ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const dataDir = createRunDir("vulnsub-bench-e2e-", flags.keep);
const profileDir = flags["cpu-prof"] ? join(dataDir, "profiles") : undefined;
const chunkAssets = flags["chunk-assets"] ?? DEFAULT_CHUNK_ASSETS;

printMachine(dataDir, flags.smoke);
const size = chooseSize();
console.log(
  `data: ${formatCount(size.assets * size.perAsset)} findings ` +
    `(${formatCount(size.assets)} assets x ${size.perAsset}), seed ${SEED}, ` +
    `rate limit lifted, export chunks of ${chunkAssets} assets`,
);

await runBench(size);

async function runBench(dataset: { assets: number; perAsset: number }) {
  const prefix = `vulnsub-bench-e2e-${process.pid}-${Date.now()}`;
  const logPath = join(dataDir, "vulnerabilities.jsonl");
  const sampler = createProcessSampler(SAMPLE_INTERVAL_MS);
  const services: ServiceProcess[] = [];
  const onText = (name: string, line: string) =>
    console.error(`[${name}] ${line}`);
  const common = { cpuProfileDir: profileDir, onText };

  try {
    const simulator = await startSimulatorProcess({
      ...common,
      vendor: "tenable",
      seed: SEED,
      assets: dataset.assets,
      findingsPerAsset: dataset.perAsset,
    });
    services.push(simulator.service);
    sampler.watch("simulator", simulator.service.pid);

    const flusher = await startFlusher({
      ...common,
      dataDir: join(dataDir, "flusher"),
      logPath,
    });
    services.unshift(flusher.service);
    sampler.watch("flusher", flusher.service.pid);

    // CPU spent before the sync (dataset build, start-up) is left out.
    const before = sampler.sampleNow();
    const startedMs = performance.now();
    const poller = startPoller({
      ...common,
      vendor: "tenable",
      baseUrl: simulator.url,
      flusherAddress: flusher.address,
      stateDir: join(dataDir, "poller-state"),
      redisUrl,
      redisKeyPrefix: prefix,
      env: {
        // Simulated exports finish in about a second; polling their status
        // every 2-30 s, as for the real API, would only add waiting.
        TENABLE_STATUS_POLL_MIN_MS: "200",
        TENABLE_STATUS_POLL_MAX_MS: "1000",
        TENABLE_NUM_ASSETS: String(chunkAssets),
      },
    });
    services.unshift(poller);
    sampler.watch("poller", poller.pid);

    const timeoutMs = flags.smoke ? 300_000 : 4 * 3600_000;
    const cycle = await waitForCycle(poller, timeoutMs);
    const seconds = (performance.now() - startedMs) / 1000;
    const after = sampler.sampleNow();
    sampler.stop();

    await stopServices(services.slice(0, 2), 30_000);
    const truth = await fetchGroundTruth(simulator.url, {
      vendor: "tenable",
      timeoutMs: 600_000,
    });
    await simulator.service.stop(30_000);

    const check = await checkFindingsLog(logPath, truth.served, "tenable");
    printFigures(Number(cycle.records ?? 0), seconds, before, after);
    console.log(
      `log: ${formatBytes(check.bytes)}, ` +
        `${formatCount(check.bytes / Math.max(1, check.lines))} bytes per line`,
    );
    console.log(describeLogCheck(check));
    if (profileDir) printCpuProfiles(profileDir);
    if (!check.ok) process.exitCode = 1;
  } finally {
    sampler.stop();
    await stopServices(services, 10_000);
    await deleteKeysWithPrefix(redisUrl, prefix).catch(() => 0);
  }
}

function printFigures(
  records: number,
  seconds: number,
  before: Map<string, ProcessStats>,
  after: Map<string, ProcessStats>,
) {
  console.log(
    `sync: ${formatCount(records)} findings in ${formatSeconds(seconds)} ` +
      `(poller start to cycle.completed): ` +
      `${formatCount(records / seconds)} findings/s`,
  );
  console.log("process     peak RSS     CPU s  CPU s per 1k findings");
  for (const name of ["simulator", "poller", "flusher"]) {
    const end = after.get(name);
    if (!end) {
      console.log(`${name.padEnd(10)}  (exited before it was read)`);
      continue;
    }
    const cpuSeconds = end.cpuSeconds - (before.get(name)?.cpuSeconds ?? 0);
    console.log(
      `${name.padEnd(10)}  ${formatBytes(end.peakRssBytes).padStart(10)}` +
        `  ${cpuSeconds.toFixed(1).padStart(8)}` +
        `  ${((cpuSeconds / records) * 1000).toFixed(3).padStart(21)}`,
    );
  }
  console.log(
    "(peak RSS is VmHWM over the process's life; the simulator's includes " +
      "its in-memory dataset. CPU counts from the poller's start, and the " +
      "poller's includes its own start-up.)",
  );
}

function chooseSize() {
  const requested =
    flags.findings ?? (flags.smoke ? SMOKE_FINDINGS : FULL_FINDINGS);
  if (requested < 1) fail(`--findings: expected at least 1\n${USAGE}`);
  const freeBytes = freeDiskBytes(dataDir);
  const maxFindings = Math.floor(
    freeBytes / (DISK_FACTOR * ESTIMATED_LINE_BYTES),
  );
  let findings = requested;
  if (maxFindings < requested) {
    findings = maxFindings;
    console.log(
      `scaled down: ${formatCount(requested)} findings need about ` +
        `${formatBytes(requested * ESTIMATED_LINE_BYTES)} of log and ` +
        `${DISK_FACTOR} x that free, but ${dataDir} has ` +
        `${formatBytes(freeBytes)} free; running ${formatCount(findings)}`,
    );
  }
  if (findings < 1) fail(`not enough free disk under ${dataDir} to run`);

  const perAsset = Math.min(
    findings,
    flags["findings-per-asset"] ?? DEFAULT_FINDINGS_PER_ASSET,
  );
  if (perAsset < 1) fail(`--findings-per-asset: expected at least 1\n${USAGE}`);
  return { assets: Math.ceil(findings / perAsset), perAsset };
}
