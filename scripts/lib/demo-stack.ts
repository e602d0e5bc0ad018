// The demo stack on loopback: one simulator per vendor, one flusher and one
// poller per vendor, each a child process in its own process group with
// its output copied to <dataDir>/logs/<name>.log. Used by scripts/demo.ts
// and the end-to-end tests.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Vendor } from "@vulnsub/shared";
import { SIMULATOR_CREDENTIALS } from "@vulnsub/simulators";
import type { SimulatorCounters } from "@vulnsub/simulators";
import { fetchGroundTruth, type GroundTruthSet } from "./ground-truth.ts";
import {
  spawnService,
  stopServices,
  type JsonEvent,
  type ServiceProcess,
} from "./processes.ts";

export const REPO_DIR = resolve(import.meta.dir, "../..");

export interface DemoStackOptions {
  dataDir: string;
  redisUrl: string;
  /** Unique per run, so runs sharing one Redis never meet. */
  redisKeyPrefix: string;
  vendors: readonly Vendor[];
  seed: number;
  assets: number;
  findingsPerAsset: number;
  /** Quota each simulator enforces and audits. */
  quota: { requests: number; windowMs: number };
  /** Requests per window the pollers allow themselves (below the quota). */
  pollerRequestsPerWindow: number;
  /** Pause between a poller's sync cycles. */
  pollIntervalMs: number;
  /** Job source name; default "default". */
  source?: string;
  onPollerEvent?: (vendor: Vendor, event: JsonEvent) => void;
  /** Every JSON event of every process, pollers included. */
  onEvent?: (name: string, event: JsonEvent) => void;
  /** Non-JSON output and stderr lines of any process. */
  onText?: (name: string, line: string) => void;
  /** Records per vendor page: Qualys hosts, Rapid7 assets, Tenable assets. */
  pageSize: { qualys: number; rapid7: number; tenable: number };
  /** Extra environment for every poller. */
  pollerEnv?: Readonly<Record<string, string>>;
}

export interface DemoStack {
  readonly dataDir: string;
  readonly logPath: string;
  readonly flusherAddress: string;
  readonly simulatorUrls: ReadonlyMap<Vendor, string>;
  readonly pollers: ReadonlyMap<Vendor, ServiceProcess>;
  readonly flusher: ServiceProcess;
  /** Every process, pollers first, so stopping in order drains first. */
  processes(): ServiceProcess[];
  stopPollers(graceMs?: number): Promise<void>;
  /** Stops everything still running: pollers, flusher, simulators. */
  stop(graceMs?: number): Promise<void>;
  counters(vendor: Vendor): Promise<SimulatorCounters>;
  groundTruth(vendor: Vendor): Promise<GroundTruthSet>;
  advanceEpoch(vendor: Vendor): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;

/** Starts simulators, then the flusher, then the pollers. */
export async function startDemoStack(
  options: DemoStackOptions,
): Promise<DemoStack> {
  const logDir = join(options.dataDir, "logs");
  mkdirSync(logDir, { recursive: true });
  const started: ServiceProcess[] = [];
  const source = options.source ?? "default";
  const spawnLogged = (
    name: string,
    command: string[],
    env: Record<string, string>,
    onEvent?: (event: JsonEvent) => void,
  ) => {
    const service = spawnService({
      name,
      command,
      cwd: REPO_DIR,
      env: childEnv(env),
      logPath: join(logDir, `${name}.log`),
      onEvent: (event) => {
        options.onEvent?.(name, event);
        onEvent?.(event);
      },
      onText: (line) => options.onText?.(name, line),
    });
    started.unshift(service);
    return service;
  };

  try {
    const simulatorUrls = await startSimulators(options, spawnLogged);
    const logPath = join(options.dataDir, "vulnerabilities.jsonl");
    const flusher = spawnLogged(
      "flusher",
      [process.execPath, "run", "services/flusher"],
      {
        FLUSHER_LISTEN: "127.0.0.1:0",
        DATA_DIR: join(options.dataDir, "flusher"),
        FINDINGS_LOG_PATH: logPath,
        METRICS_LISTEN: "127.0.0.1:0",
      },
    );
    const serving = await flusher.waitForEvent(
      (e) => e.event === "flusher.serving",
      READY_TIMEOUT_MS,
    );
    const flusherAddress = String(serving.address);

    const pollers = new Map<Vendor, ServiceProcess>();
    for (const vendor of options.vendors) {
      const poller = spawnLogged(
        `poller-${vendor}`,
        [
          process.execPath,
          "run",
          "services/poller",
          "--vendor",
          vendor,
          "--source",
          source,
        ],
        pollerEnv(options, vendor, simulatorUrls.get(vendor)!, flusherAddress),
        (event) => options.onPollerEvent?.(vendor, event),
      );
      pollers.set(vendor, poller);
    }

    return createHandle(options, {
      logPath,
      flusherAddress,
      simulatorUrls,
      pollers,
      flusher,
      started,
      source,
    });
  } catch (error) {
    await stopServices(started, 5_000);
    throw error;
  }
}

type SpawnLogged = (
  name: string,
  command: string[],
  env: Record<string, string>,
  onEvent?: (event: JsonEvent) => void,
) => ServiceProcess;

async function startSimulators(
  options: DemoStackOptions,
  spawnLogged: SpawnLogged,
) {
  const mainPath = join(REPO_DIR, "packages/simulators/src/main.ts");
  const entries = await Promise.all(
    options.vendors.map(async (vendor) => {
      const simulator = spawnLogged(
        `simulator-${vendor}`,
        [
          process.execPath,
          mainPath,
          "--vendor",
          vendor,
          "--port",
          "0",
          "--seed",
          String(options.seed),
          "--assets",
          String(options.assets),
          "--findings-per-asset",
          String(options.findingsPerAsset),
          "--rate-limit",
          String(options.quota.requests),
          "--rate-window-ms",
          String(options.quota.windowMs),
        ],
        {},
      );
      const listening = await simulator.waitForEvent(
        (e) => e.event === "simulator.listening",
        READY_TIMEOUT_MS,
      );
      return [vendor, String(listening.url)] as const;
    }),
  );
  return new Map<Vendor, string>(entries);
}

function pollerEnv(
  options: DemoStackOptions,
  vendor: Vendor,
  baseUrl: string,
  flusherAddress: string,
): Record<string, string> {
  // An empty or odd URL would leave the poller on its production default.
  if (!/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost):\d+$/.test(baseUrl)) {
    throw new Error(
      `${vendor} simulator URL ${JSON.stringify(baseUrl)} is not on loopback`,
    );
  }
  return {
    FLUSHER_ADDRESS: flusherAddress,
    STATE_DIR: join(options.dataDir, "poller-state"),
    REDIS_URL: options.redisUrl,
    REDIS_KEY_PREFIX: options.redisKeyPrefix,
    RATE_LIMIT_RPM: String(options.pollerRequestsPerWindow),
    RATE_LIMIT_WINDOW_MS: String(options.quota.windowMs),
    POLL_INTERVAL_MS: String(options.pollIntervalMs),
    METRICS_LISTEN: "127.0.0.1:0",
    [`${vendor.toUpperCase()}_BASE_URL`]: baseUrl,
    ...SIMULATOR_CREDENTIALS[vendor],
    QUALYS_TRUNCATION_LIMIT: String(options.pageSize.qualys),
    RAPID7_PAGE_SIZE: String(options.pageSize.rapid7),
    TENABLE_NUM_ASSETS: String(options.pageSize.tenable),
    // Simulated exports finish within seconds; polling their status every
    // 2-30 s, as for the real API, would mostly wait.
    TENABLE_STATUS_POLL_MIN_MS: "200",
    TENABLE_STATUS_POLL_MAX_MS: "1000",
    ...options.pollerEnv,
  };
}

/**
 * Builds a service's environment: this process's, minus settings that
 * would change the log format or point the service elsewhere, plus
 * `extra`.
 */
function childEnv(
  extra: Record<string, string>,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) {
    if (
      /^(QUALYS|RAPID7|TENABLE)_|^REDIS_|^RATE_LIMIT_|^FLUSHER_|^METRICS_/.test(
        key,
      )
    ) {
      delete env[key];
    }
  }
  delete env.LOG_FORMAT;
  delete env.VULNSUB_CONFIG;
  env.LOG_LEVEL = "info";
  return { ...env, ...extra };
}

function createHandle(
  options: DemoStackOptions,
  parts: {
    logPath: string;
    flusherAddress: string;
    simulatorUrls: Map<Vendor, string>;
    pollers: Map<Vendor, ServiceProcess>;
    flusher: ServiceProcess;
    started: ServiceProcess[];
    source: string;
  },
): DemoStack {
  const simulators = parts.started.filter((s) =>
    s.name.startsWith("simulator-"),
  );
  const url = (vendor: Vendor) => {
    const base = parts.simulatorUrls.get(vendor);
    if (!base) throw new Error(`no simulator for vendor ${vendor}`);
    return base;
  };

  return {
    dataDir: options.dataDir,
    logPath: parts.logPath,
    flusherAddress: parts.flusherAddress,
    simulatorUrls: parts.simulatorUrls,
    pollers: parts.pollers,
    flusher: parts.flusher,
    processes: () => [...parts.pollers.values(), parts.flusher, ...simulators],
    async stopPollers(graceMs = 15_000) {
      await stopServices([...parts.pollers.values()], graceMs);
    },
    async stop(graceMs = 15_000) {
      await stopServices([...parts.pollers.values()], graceMs);
      await parts.flusher.stop(graceMs);
      await stopServices(simulators, graceMs);
    },
    async counters(vendor) {
      const response = await fetch(`${url(vendor)}/_sim/counters`);
      if (!response.ok)
        throw new Error(
          `${vendor} simulator counters: HTTP ${response.status}`,
        );
      return (await response.json()) as SimulatorCounters;
    },
    groundTruth: (vendor) =>
      fetchGroundTruth(url(vendor), { vendor, source: parts.source }),
    async advanceEpoch(vendor) {
      const response = await fetch(`${url(vendor)}/_sim/advance`, {
        method: "POST",
      });
      if (!response.ok)
        throw new Error(`${vendor} simulator advance: HTTP ${response.status}`);
    },
  };
}
