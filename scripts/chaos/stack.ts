// The stack a chaos run breaks: its own redis-server, the three simulators
// in this process, one flusher and `pollersPerVendor` pollers per vendor as
// real child processes, all under one temp dir:
//
//   <root>/data/    flusher DATA_DIR with vulnerabilities.jsonl
//   <root>/state/   pollers' STATE_DIR (job locks)
//   <root>/logs/    stdout and stderr of every process run
//   <root>/redis/   redis-server working folder (persistence off)
//
// The flusher listens on a port picked once, so pollers keep one
// FLUSHER_ADDRESS across flusher restarts.
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VENDORS, type Vendor } from "@vulnsub/shared";
import { REPO_DIR } from "../lib/demo-stack.ts";
import { findFreePort } from "../lib/ensure-redis.ts";
import type { ExitStatus } from "../lib/processes.ts";
import { createEventTracker, type EventTracker } from "./event-tracker.ts";
import type { ChaosOptions } from "./options.ts";
import type { ChaosPlan } from "./plan.ts";
import { startRedisControl, type RedisControl } from "./redis-control.ts";
import { createServiceSlot, type ServiceSlot } from "./service-slot.ts";
import {
  credentialEnv,
  startChaosSimulators,
  type SimulatorSet,
} from "./simulators.ts";

export interface ChaosDirs {
  root: string;
  data: string;
  state: string;
  logs: string;
  redis: string;
}

export interface ChaosStack {
  readonly dirs: ChaosDirs;
  readonly logPath: string;
  readonly flusherAddress: string;
  readonly redis: RedisControl;
  readonly simulators: SimulatorSet;
  readonly tracker: EventTracker;
  readonly flusher: ServiceSlot;
  readonly pollers: readonly ServiceSlot[];
  pollersOf(vendor: Vendor): ServiceSlot[];
  /** Starts the flusher and waits for flusher.serving. */
  startFlusher(timeoutMs: number): Promise<void>;
  /** Starts every poller that is not running. */
  startMissingPollers(): void;
  /** SIGTERMs pollers, then the flusher; returns each slot's exit. */
  stopServices(graceMs: number): Promise<Map<string, ExitStatus | undefined>>;
  /** SIGKILLs every process, stops simulators and Redis; idempotent. */
  destroy(): Promise<void>;
}

const REDIS_KEY_PREFIX = "vulnsub-chaos";
/** Page sizes small enough that one cycle spans many pages and batches. */
const QUALYS_TRUNCATION_LIMIT = 10;
const RAPID7_PAGE_SIZE = 10;
const TENABLE_NUM_ASSETS = 50;
const MAX_BATCH_RECORDS = 20;

/** Creates the temp dirs; the stack itself starts with startChaosStack. */
export function createChaosDirs(): ChaosDirs {
  const root = mkdtempSync(join(tmpdir(), "vulnsub-chaos-"));
  const dirs = {
    root,
    data: join(root, "data"),
    state: join(root, "state"),
    logs: join(root, "logs"),
    redis: join(root, "redis"),
  };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  return dirs;
}

/** Starts Redis, the simulators, the flusher, then every poller. */
export async function startChaosStack(
  options: ChaosOptions,
  plan: ChaosPlan,
  dirs: ChaosDirs,
  note: (line: string) => void,
): Promise<ChaosStack> {
  const tracker = createEventTracker();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const redis = await startRedisControl({ dir: dirs.redis, logDir: dirs.logs });
    cleanups.push(() => redis.stop());
    const simulators = await startChaosSimulators(options, plan.credentials);
    cleanups.push(async () => {
      await Promise.all([...simulators.values()].map((s) => s.stop()));
    });

    const flusherAddress = `127.0.0.1:${await findFreePort()}`;
    const logPath = join(dirs.data, "vulnerabilities.jsonl");
    const flusher = createServiceSlot(
      {
        name: "flusher",
        vendor: null,
        command: [process.execPath, "run", "services/flusher"],
        cwd: REPO_DIR,
        env: childEnv(flusherEnv(flusherAddress, dirs.data, logPath)),
        logDir: dirs.logs,
        note,
      },
      tracker,
    );
    const pollers = VENDORS.flatMap((vendor) =>
      Array.from({ length: options.pollersPerVendor }, (_, i) =>
        createServiceSlot(
          {
            name: `poller-${vendor}-${i + 1}`,
            vendor,
            command: [process.execPath, "run", "services/poller", "--vendor", vendor],
            cwd: REPO_DIR,
            env: childEnv(
              pollerEnv(options, plan, vendor, {
                flusherAddress,
                stateDir: dirs.state,
                redisUrl: redis.url,
                baseUrl: simulators.get(vendor)!.url,
              }),
            ),
            logDir: dirs.logs,
            note,
          },
          tracker,
        ),
      ),
    );

    const stack = createHandle({
      dirs, logPath, flusherAddress, redis, simulators, tracker, flusher, pollers, cleanups,
    });
    await stack.startFlusher(60_000);
    stack.startMissingPollers();
    return stack;
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    throw error;
  }
}

function createHandle(parts: {
  dirs: ChaosDirs;
  logPath: string;
  flusherAddress: string;
  redis: RedisControl;
  simulators: SimulatorSet;
  tracker: EventTracker;
  flusher: ServiceSlot;
  pollers: ServiceSlot[];
  cleanups: (() => Promise<void>)[];
}): ChaosStack {
  const { flusher, pollers, tracker } = parts;
  let destroyed: Promise<void> | undefined;

  const startFlusher = async (timeoutMs: number) => {
    const process = flusher.current() ?? flusher.start();
    const run = flusher.currentRef()?.run;
    if (run === undefined) throw new Error("flusher: spawn failed");
    await process.waitForEvent((e) => e.event === "flusher.serving", timeoutMs);
    if (flusher.currentRef()?.run !== run) {
      throw new Error(`flusher run ${run} exited after flusher.serving`);
    }
  };

  return {
    dirs: parts.dirs,
    logPath: parts.logPath,
    flusherAddress: parts.flusherAddress,
    redis: parts.redis,
    simulators: parts.simulators,
    tracker,
    flusher,
    pollers,
    pollersOf: (vendor) => pollers.filter((slot) => slot.vendor === vendor),
    startFlusher,
    startMissingPollers() {
      for (const slot of pollers) if (!slot.current()) slot.start();
    },
    async stopServices(graceMs) {
      const statuses = new Map<string, ExitStatus | undefined>();
      const pollerExits = await Promise.all(pollers.map((slot) => slot.stop(graceMs)));
      pollers.forEach((slot, i) => statuses.set(slot.name, pollerExits[i]));
      statuses.set(flusher.name, await flusher.stop(graceMs));
      return statuses;
    },
    destroy() {
      destroyed ??= (async () => {
        await Promise.all([flusher, ...pollers].map((slot) => slot.kill()));
        for (const cleanup of parts.cleanups.reverse()) {
          await cleanup().catch(() => {});
        }
      })();
      return destroyed;
    },
  };
}

function flusherEnv(address: string, dataDir: string, logPath: string) {
  return {
    FLUSHER_LISTEN: address,
    DATA_DIR: dataDir,
    FINDINGS_LOG_PATH: logPath,
    FLUSH_BATCH_SIZE: "50",
    METRICS_LISTEN: "off",
    // Snapshots every 256 KiB or 5 s, so restarts load them and scan tails.
    SNAPSHOT_INTERVAL_BYTES: String(256 * 1024),
    SNAPSHOT_INTERVAL_MS: "5000",
    SHUTDOWN_TIMEOUT_MS: "10000",
  };
}

function pollerEnv(
  options: ChaosOptions,
  plan: ChaosPlan,
  vendor: Vendor,
  where: { flusherAddress: string; stateDir: string; redisUrl: string; baseUrl: string },
): Record<string, string> {
  const upper = vendor.toUpperCase();
  return {
    FLUSHER_ADDRESS: where.flusherAddress,
    STATE_DIR: where.stateDir,
    REDIS_URL: where.redisUrl,
    REDIS_KEY_PREFIX: REDIS_KEY_PREFIX,
    RATE_LIMIT_RPM: String(options.pollerRequestsPerWindow),
    RATE_LIMIT_WINDOW_MS: String(options.quota.windowMs),
    POLL_INTERVAL_MS: String(options.pollIntervalMs),
    LOCK_STALE_MS: String(options.lockStaleMs),
    REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs),
    SHUTDOWN_GRACE_MS: "10000",
    MAX_BATCH_RECORDS: String(MAX_BATCH_RECORDS),
    METRICS_LISTEN: "off",
    [`${upper}_BASE_URL`]: where.baseUrl,
    QUALYS_TRUNCATION_LIMIT: String(QUALYS_TRUNCATION_LIMIT),
    RAPID7_PAGE_SIZE: String(RAPID7_PAGE_SIZE),
    TENABLE_NUM_ASSETS: String(TENABLE_NUM_ASSETS),
    TENABLE_STATUS_POLL_MIN_MS: "200",
    TENABLE_STATUS_POLL_MAX_MS: "1000",
    ...credentialEnv(vendor, plan.credentials),
  };
}

/**
 * This process's environment without settings that would change the
 * services' log format or point them elsewhere, plus `extra`.
 */
function childEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(QUALYS|RAPID7|TENABLE)_|^REDIS_|^RATE_LIMIT_|^FLUSHER_|^METRICS_|^LOG_/.test(key)) {
      delete env[key];
    }
  }
  delete env.VULNSUB_CONFIG;
  delete env.DATA_DIR;
  delete env.STATE_DIR;
  env.LOG_LEVEL = "info";
  return { ...env, ...extra };
}
