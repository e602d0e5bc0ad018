// Qualys detection page memory: `bun run bench qualys-xml [--smoke]
// [--bytes N]`.
//
// A poller (child process) reads one Host List Detection page of about
// 1 GiB (smoke: 30 MiB) from the Qualys simulator and streams its
// detections to a real flusher (child process). The page is one response:
// truncation_limit is set to the number of hosts. Prints the poller's peak
// RSS (VmHWM; goal <= 200 MiB, because the parse streams), the bytes of
// XML parsed per second, the detections, and the CPU time of the poller
// and the flusher, then checks the log against the served detections.
//
// The simulator runs in this process and writes the page host by host as
// the socket drains, so it never keeps the whole page in memory. Its
// dataset is sized from a sample page of the same shape: 50 detections
// per host, RESULTS of the simulator's default 40-400 bytes and 0.2 % of
// 100-500 KB. The page bytes printed are counted exactly by reading the
// same page again after the run.
// The parse rate is the page bytes over the poller's cycle, so it is paced
// by whichever of simulator, poller and flusher acks is slowest.
//
// Options for finding what bounds a figure:
//   --cpu-prof        write and summarise Bun CPU profiles of both children
//                     (their RSS is then higher than without)
//   --timeline        print RSS, page bytes read and log size every 2 s
//   --smol            run the poller with `bun --smol`
//   --large-rate X    share of 100-500 KB RESULTS (default 0.002)
//   --results-bytes N RESULTS size of the other detections
//   --keep            keep the data folder
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { startQualysSimulator } from "@vulnsub/simulators";
import {
  stopServices,
  type JsonEvent,
  type ServiceProcess,
} from "../lib/processes.ts";
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
  readProcessStats,
  readTcpBytesTaken,
  type ProcessStats,
} from "./lib/process-stats.ts";
import { countQualysPageBytes } from "./lib/qualys-page-size.ts";
import { deleteKeysWithPrefix } from "../lib/ensure-redis.ts";
import { createRunDir } from "./lib/run-dir.ts";
import {
  READY_TIMEOUT_MS,
  startFlusher,
  startPoller,
  waitForCycle,
} from "./lib/services.ts";

const USAGE =
  "usage: bun run bench qualys-xml [--smoke] [--bytes N] " +
  "[--results-bytes N] [--large-rate X] [--cpu-prof] [--smol] " +
  "[--timeline] [--keep] [--redis-url URL]";
const FULL_BYTES = 2 ** 30;
const SMOKE_BYTES = 30 * 2 ** 20;
const GOAL_PEAK_RSS_BYTES = 200 * 2 ** 20;
const DETECTIONS_PER_HOST = 50;
// Share of detections with 100-500 KB RESULTS, the simulator's default.
const DEFAULT_LARGE_RATE = 0.002;
const SEED = 1;
// The simulator's and the poller's largest truncation_limit.
const MAX_HOSTS = 1_000_000;
const DISK_FACTOR = 3;
const SAMPLE_INTERVAL_MS = 200;
const TIMELINE_INTERVAL_MS = 2_000;

const flags = parseFlags(
  process.argv.slice(2),
  {
    smoke: "boolean",
    bytes: "integer",
    "results-bytes": "integer",
    "large-rate": "number",
    "cpu-prof": "boolean",
    smol: "boolean",
    timeline: "boolean",
    keep: "boolean",
    "redis-url": "string",
  },
  USAGE,
);
const redisUrl =
  flags["redis-url"] ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const dataDir = createRunDir("vulnsub-bench-qualys-xml-", flags.keep);
const profileDir = flags["cpu-prof"] ? join(dataDir, "profiles") : undefined;
const targetBytes = flags.bytes ?? (flags.smoke ? SMOKE_BYTES : FULL_BYTES);

printMachine(dataDir, flags.smoke);
if (freeDiskBytes(dataDir) < DISK_FACTOR * targetBytes) {
  fail(
    `${dataDir} has ${formatBytes(freeDiskBytes(dataDir))} free; a page of ` +
      `${formatBytes(targetBytes)} needs ${DISK_FACTOR} x that for the log`,
  );
}

await runBench(await chooseHosts());

async function runBench(hosts: number) {
  const prefix = `vulnsub-bench-qualys-xml-${process.pid}-${Date.now()}`;
  const logPath = join(dataDir, "vulnerabilities.jsonl");
  const simulator = await startSimulator(hosts);
  const sampler = createProcessSampler(SAMPLE_INTERVAL_MS);
  const services: ServiceProcess[] = [];
  const onText = (name: string, line: string) =>
    console.error(`[${name}] ${line}`);

  try {
    const flusher = await startFlusher({
      cpuProfileDir: profileDir,
      onText,
      dataDir: join(dataDir, "flusher"),
      logPath,
    });
    services.push(flusher.service);
    sampler.watch("flusher", flusher.service.pid);

    const before = sampler.sampleNow();
    const benchCpuBefore = process.cpuUsage();
    const startedMs = performance.now();
    const poller = startPoller({
      cpuProfileDir: profileDir,
      bunFlags: flags.smol ? ["--smol"] : [],
      onText,
      vendor: "qualys",
      baseUrl: simulator.url,
      flusherAddress: flusher.address,
      stateDir: join(dataDir, "poller-state"),
      redisUrl,
      redisKeyPrefix: prefix,
      env: { QUALYS_TRUNCATION_LIMIT: String(hosts) },
    });
    services.unshift(poller);
    sampler.watch("poller", poller.pid);
    // The resident set after start-up, before the page arrives.
    const startRss = poller
      .waitForEvent((e) => e.event === "poller.started", READY_TIMEOUT_MS)
      .then(() => readProcessStats(poller.pid)?.rssBytes ?? 0);

    const timeline = flags.timeline
      ? startTimeline(poller.pid, logPath, startedMs, simulator.url)
      : undefined;
    const timeoutMs = flags.smoke ? 300_000 : 2 * 3600_000;
    const cycle = await waitForCycle(poller, timeoutMs).finally(() =>
      clearInterval(timeline),
    );
    const wallSeconds = (performance.now() - startedMs) / 1000;
    const after = sampler.sampleNow();
    const benchCpu = process.cpuUsage(benchCpuBefore);
    sampler.stop();
    await stopServices(services, 30_000);

    const pageBytes = await countQualysPageBytes(simulator.url, hosts);
    const check = await checkFindingsLog(
      logPath,
      simulator.groundTruth(),
      "qualys",
    );
    const pollerEnd = after.get("poller");
    const flusherEnd = after.get("flusher");
    if (!pollerEnd || !flusherEnd) fail("a process exited before it was read");

    printResults({
      pageBytes,
      cycle,
      wallSeconds,
      poller: pollerEnd,
      pollerStartRssBytes: await startRss,
      flusher: flusherEnd,
      flusherCpuSeconds:
        flusherEnd.cpuSeconds - (before.get("flusher")?.cpuSeconds ?? 0),
      simulatorCpuSeconds: (benchCpu.user + benchCpu.system) / 1e6,
    });
    console.log(
      `log: ${formatBytes(check.bytes)} ` +
        `(${(check.bytes / pageBytes).toFixed(2)} log bytes per page byte)`,
    );
    console.log(describeLogCheck(check));
    if (profileDir) printCpuProfiles(profileDir);
    if (!check.ok) process.exitCode = 1;
  } finally {
    sampler.stop();
    await stopServices(services, 10_000);
    await simulator.stop();
    await deleteKeysWithPrefix(redisUrl, prefix).catch(() => 0);
  }
}

function printResults(run: {
  pageBytes: number;
  cycle: JsonEvent;
  wallSeconds: number;
  poller: ProcessStats;
  pollerStartRssBytes: number;
  flusher: ProcessStats;
  flusherCpuSeconds: number;
  simulatorCpuSeconds: number;
}) {
  const { pageBytes, cycle, poller } = run;
  const cycleSeconds = Number(cycle.durationMs ?? 0) / 1000;
  const verdict = poller.peakRssBytes <= GOAL_PEAK_RSS_BYTES ? "meets" : "MISSES";
  console.log(
    `page: ${formatBytes(pageBytes)} of XML (${formatCount(pageBytes)} ` +
      `bytes), ${formatCount(Number(cycle.records ?? 0))} detections, ` +
      `${String(cycle.pages ?? "?")} page(s)`,
  );
  console.log(
    `poller peak RSS: ${formatBytes(poller.peakRssBytes)} ` +
      `(${verdict} the goal of <= ${formatBytes(GOAL_PEAK_RSS_BYTES)}; ` +
      `RSS at poller.started ${formatBytes(run.pollerStartRssBytes)})`,
  );
  console.log(
    `parse rate: ${formatBytes(pageBytes / cycleSeconds)}/s over the ` +
      `cycle (${formatSeconds(cycleSeconds)}; ` +
      `${formatSeconds(run.wallSeconds)} from poller start)`,
  );
  console.log(
    `poller CPU: ${formatSeconds(poller.cpuSeconds)} ` +
      `(${formatBytes(pageBytes / poller.cpuSeconds)} of XML per CPU second)`,
  );
  console.log(
    `flusher: peak RSS ${formatBytes(run.flusher.peakRssBytes)}, ` +
      `CPU ${formatSeconds(run.flusherCpuSeconds)}`,
  );
  console.log(
    `simulator (this process): CPU ${formatSeconds(run.simulatorCpuSeconds)}`,
  );
}

function startSimulator(hosts: number) {
  return startQualysSimulator({
    seed: SEED,
    assets: hosts,
    findingsPerAsset: DETECTIONS_PER_HOST,
    resultsBytes: flags["results-bytes"],
    largeFindingRate: flags["large-rate"] ?? DEFAULT_LARGE_RATE,
    rateLimit: { requests: 1_000_000, windowMs: 60_000 },
  });
}

// Sizes the dataset from a sample page of the same shape: the bytes per
// host of the sample times the hosts gives the target page size.
async function chooseHosts(): Promise<number> {
  const sampleHosts = flags.smoke ? 200 : 2_000;
  const sample = await startSimulator(sampleHosts);
  let sampleBytes: number;
  try {
    sampleBytes = await countQualysPageBytes(sample.url, sampleHosts);
  } finally {
    await sample.stop();
  }

  const hosts = Math.max(
    1,
    Math.round((targetBytes * sampleHosts) / sampleBytes),
  );
  if (hosts > MAX_HOSTS) {
    fail(
      `a page of ${formatBytes(targetBytes)} needs ${formatCount(hosts)} ` +
        `hosts, over the truncation_limit maximum of ${formatCount(MAX_HOSTS)}; ` +
        "raise --results-bytes",
    );
  }
  console.log(
    `data: ${formatCount(hosts)} hosts x ${DETECTIONS_PER_HOST} detections ` +
      `(${formatCount(sampleBytes / sampleHosts / DETECTIONS_PER_HOST)} ` +
      `bytes per detection in a ${formatCount(sampleHosts)}-host sample), ` +
      `seed ${SEED}, one page, rate limit lifted, real flusher`,
  );
  return hosts;
}

// Prints every TIMELINE_INTERVAL_MS the poller's RSS, the page bytes it
// has taken from its socket and the log size, to show whether reading runs
// ahead of parsing (log bytes / 1.3 is about the XML bytes parsed).
function startTimeline(
  pid: number,
  logPath: string,
  startedMs: number,
  simulatorUrl: string,
) {
  const simulatorPort = Number(new URL(simulatorUrl).port);
  console.log("timeline:   s  poller RSS  page read         log");
  return setInterval(() => {
    const seconds = ((performance.now() - startedMs) / 1000).toFixed(0);
    const rss = readProcessStats(pid)?.rssBytes ?? 0;
    const read = readTcpBytesTaken(simulatorPort) ?? 0;
    const logBytes = existsSync(logPath) ? statSync(logPath).size : 0;
    console.log(
      `timeline: ${seconds.padStart(3)}  ${formatBytes(rss).padStart(10)}` +
        `  ${formatBytes(read).padStart(10)}  ${formatBytes(logBytes).padStart(10)}`,
    );
  }, TIMELINE_INTERVAL_MS);
}
