// The product's processes as the benches start them: a vendor simulator,
// the flusher and a poller, each a child process. Each runs its entry file
// directly, not through `bun run`, so the pid read for RSS and CPU is the
// service itself and not a wrapper.
import { join, resolve } from "node:path";
import type { Vendor } from "@vulnsub/shared";
import { SIMULATOR_CREDENTIALS } from "@vulnsub/simulators";
import {
  spawnService,
  type JsonEvent,
  type ServiceProcess,
} from "../../lib/processes.ts";

export const REPO_DIR = resolve(import.meta.dir, "../../..");

/** Time allowed for a service to log that it is ready. */
export const READY_TIMEOUT_MS = 120_000;

/** Options every service start accepts. */
export interface ServiceStartOptions {
  /**
   * Folder for a Bun CPU profile, written when the process exits, as
   * <name>-<n>.cpuprofile where n counts the services this process started.
   */
  cpuProfileDir?: string;
  /** Extra flags for the bun runtime, such as "--smol". */
  bunFlags?: string[];
  /** Receives stderr and non-JSON stdout lines. */
  onText?: (name: string, line: string) => void;
}

export interface FlusherStartOptions extends ServiceStartOptions {
  dataDir: string;
  logPath: string;
  flushBatchSize?: number;
}

export interface PollerStartOptions extends ServiceStartOptions {
  vendor: Vendor;
  baseUrl: string;
  flusherAddress: string;
  stateDir: string;
  redisUrl: string;
  redisKeyPrefix: string;
  /** Extra environment, applied last. */
  env?: Record<string, string>;
}

export interface SimulatorStartOptions extends ServiceStartOptions {
  vendor: Vendor;
  seed: number;
  assets: number;
  findingsPerAsset: number;
}

/** Starts the flusher and waits until it serves; returns its address. */
export async function startFlusher(options: FlusherStartOptions) {
  const service = spawnBun("flusher", "services/flusher/src/main.ts", [], {
    options,
    env: {
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: options.dataDir,
      FINDINGS_LOG_PATH: options.logPath,
      FLUSH_BATCH_SIZE: String(options.flushBatchSize ?? 500),
      METRICS_LISTEN: "off",
    },
  });
  const serving = await service.waitForEvent(
    (event) => event.event === "flusher.serving",
    READY_TIMEOUT_MS,
  );
  return { service, address: String(serving.address) };
}

/**
 * Starts a poller for one vendor with the rate limit lifted (one million
 * requests per minute) and metrics off. It runs cycles until stopped.
 */
export function startPoller(options: PollerStartOptions): ServiceProcess {
  const vendor = options.vendor;
  return spawnBun(
    `poller-${vendor}`,
    "services/poller/src/main.ts",
    ["--vendor", vendor],
    {
      options,
      env: {
        FLUSHER_ADDRESS: options.flusherAddress,
        STATE_DIR: options.stateDir,
        REDIS_URL: options.redisUrl,
        REDIS_KEY_PREFIX: options.redisKeyPrefix,
        RATE_LIMIT_RPM: "1000000",
        RATE_LIMIT_WINDOW_MS: "60000",
        METRICS_LISTEN: "off",
        [`${vendor.toUpperCase()}_BASE_URL`]: options.baseUrl,
        ...SIMULATOR_CREDENTIALS[vendor],
        ...options.env,
      },
    },
  );
}

/**
 * Starts a vendor simulator with its quota lifted to one million requests
 * per minute and waits until it listens; returns its base URL.
 */
export async function startSimulatorProcess(options: SimulatorStartOptions) {
  const args = [
    "--vendor",
    options.vendor,
    "--seed",
    String(options.seed),
    "--assets",
    String(options.assets),
    "--findings-per-asset",
    String(options.findingsPerAsset),
    "--rate-limit",
    "1000000",
    "--rate-window-ms",
    "60000",
  ];
  const service = spawnBun(
    `simulator-${options.vendor}`,
    "packages/simulators/src/main.ts",
    args,
    { options, env: {} },
  );
  const listening = await service.waitForEvent(
    (event) => event.event === "simulator.listening",
    READY_TIMEOUT_MS,
  );
  return { service, url: String(listening.url) };
}

/** Waits for a poller's first completed cycle; rejects on a failed one. */
export async function waitForCycle(
  poller: ServiceProcess,
  timeoutMs: number,
): Promise<JsonEvent> {
  const event = await poller.waitForEvent(
    (e) =>
      e.event === "cycle.completed" ||
      e.event === "cycle.failed" ||
      e.event === "poller.failed",
    timeoutMs,
  );
  if (event.event !== "cycle.completed") {
    const err = event.err as { message?: unknown } | undefined;
    const detail = String(err?.message ?? event.msg ?? "no message");
    throw new Error(
      `${poller.name}: ${event.event} (code ${String(event.code)}): ${detail}`,
    );
  }
  return event;
}

let servicesStarted = 0;

function spawnBun(
  name: string,
  entry: string,
  args: string[],
  spec: { options: ServiceStartOptions; env: Record<string, string> },
): ServiceProcess {
  const profileDir = spec.options.cpuProfileDir;
  servicesStarted++;
  const profileFlags = profileDir
    ? [
        "--cpu-prof",
        `--cpu-prof-dir=${profileDir}`,
        `--cpu-prof-name=${name}-${servicesStarted}.cpuprofile`,
      ]
    : [];
  return spawnService({
    name,
    command: [
      process.execPath,
      ...profileFlags,
      ...(spec.options.bunFlags ?? []),
      join(REPO_DIR, entry),
      ...args,
    ],
    cwd: REPO_DIR,
    env: childEnv(spec.env),
    onText: (line) => spec.options.onText?.(name, line),
  });
}

// This process's environment without settings that would point a service
// elsewhere or change its log format, plus `extra`.
function childEnv(extra: Record<string, string>) {
  const env: Record<string, string | undefined> = { ...process.env };
  const pointsElsewhere =
    /^(QUALYS|RAPID7|TENABLE|SIMULATOR)_|^REDIS_|^RATE_LIMIT_|^FLUSHER_|^METRICS_/;
  for (const key of Object.keys(env)) {
    if (pointsElsewhere.test(key)) delete env[key];
  }
  delete env.LOG_FORMAT;
  delete env.VULNSUB_CONFIG;
  delete env.DATA_DIR;
  delete env.STATE_DIR;
  env.LOG_LEVEL = "info";
  return { ...env, ...extra };
}
