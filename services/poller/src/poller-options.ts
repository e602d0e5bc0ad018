import {
  VENDORS,
  parseBoolean,
  parseEnum,
  parseHostPort,
  parseInteger,
  parseJobRef,
  parseNonEmptyString,
  type OptionSpec,
  type OptionSpecs,
} from "@vulnsub/shared";
import { pollerOpsOptionSpecs } from "./poller-ops-options.ts";

/** Options every poller takes, whatever its vendor. */
export const pollerOptionSpecs = {
  vendor: option({
    key: "vendor",
    env: "VENDOR",
    flag: "vendor",
    description: `vendor to poll: ${VENDORS.join(", ")}`,
    parse: parseEnum(VENDORS),
  }),
  source: option({
    key: "source",
    env: "SOURCE",
    flag: "source",
    // One account per vendor needs no name.
    default: "default",
    description: "name of the vendor account (a-z, 0-9, '-', '_'; max 64)",
    parse: parseSource,
  }),
  flusherAddress: option({
    key: "flusherAddress",
    env: "FLUSHER_ADDRESS",
    flag: "flusher",
    default: "127.0.0.1:50051",
    description: "host:port of the flusher's gRPC server",
    parse: (raw) => {
      parseHostPort(raw);
      return parseNonEmptyString(raw);
    },
  }),
  stateDir: option({
    key: "stateDir",
    env: "STATE_DIR",
    flag: "state-dir",
    default: "./data/state",
    description: "folder of the job lock files",
    parse: parseNonEmptyString,
  }),
  redisUrl: option<string | null>({
    key: "redisUrl",
    env: "REDIS_URL",
    flag: "redis-url",
    // Null builds redis://REDIS_HOST:REDIS_PORT.
    default: null,
    description: "Redis URL; when unset, built from REDIS_HOST and REDIS_PORT",
    parse: parseRedisUrl,
  }),
  redisHost: option({
    key: "redisHost",
    env: "REDIS_HOST",
    flag: "redis-host",
    default: "127.0.0.1",
    description: "Redis host, used when REDIS_URL is unset",
    parse: parseNonEmptyString,
  }),
  redisPort: option({
    key: "redisPort",
    env: "REDIS_PORT",
    flag: "redis-port",
    default: 6379,
    description: "Redis port, used when REDIS_URL is unset",
    parse: parseInteger(1, 65535),
  }),
  redisKeyPrefix: option({
    key: "redisKeyPrefix",
    env: "REDIS_KEY_PREFIX",
    flag: "redis-key-prefix",
    default: "vulnsub",
    description: "prefix of every Redis key; pollers sharing one must agree",
    parse: parseNonEmptyString,
  }),
  rateLimitRpm: option({
    key: "rateLimitRpm",
    env: "RATE_LIMIT_RPM",
    flag: "rate-limit-rpm",
    // A conservative budget every vendor tolerates; raise it per vendor.
    default: 20,
    unit: "requests per window",
    description: "vendor requests allowed per rate limit window, all pollers",
    parse: parseInteger(1, 1_000_000),
  }),
  rateLimitWindowMs: option({
    key: "rateLimitWindowMs",
    env: "RATE_LIMIT_WINDOW_MS",
    flag: "rate-limit-window-ms",
    default: 60_000,
    unit: "ms",
    description: "length of the rolling rate limit window",
    parse: parseInteger(1, 86_400_000),
  }),
  maxConcurrentRequests: option({
    key: "maxConcurrentRequests",
    env: "MAX_CONCURRENT_REQUESTS",
    flag: "max-concurrent-requests",
    // Only Qualys counts running calls; it has its own default below.
    default: 0,
    unit: "requests",
    description: "vendor requests running at once, all pollers; 0 = no limit",
    parse: parseInteger(0, 1000),
  }),
  pollIntervalMs: option({
    key: "pollIntervalMs",
    env: "POLL_INTERVAL_MS",
    flag: "poll-interval-ms",
    default: 3_600_000,
    unit: "ms",
    description: "wait between the end of a cycle and the next cycle",
    parse: parseInteger(1, 2 ** 31 - 1),
  }),
  cycleRetryBaseMs: option({
    key: "cycleRetryBaseMs",
    env: "CYCLE_RETRY_BASE_MS",
    flag: "cycle-retry-base-ms",
    default: 1_000,
    unit: "ms",
    description: "wait after a failed cycle, doubled per failure in a row",
    parse: parseInteger(1, 2 ** 31 - 1),
  }),
  cycleRetryMaxMs: option({
    key: "cycleRetryMaxMs",
    env: "CYCLE_RETRY_MAX_MS",
    flag: "cycle-retry-max-ms",
    default: 60_000,
    unit: "ms",
    description: "cap of the wait after a failed cycle",
    parse: parseInteger(1, 2 ** 31 - 1),
  }),
  lookbackMs: option({
    key: "lookbackMs",
    env: "LOOKBACK_MS",
    flag: "lookback-ms",
    // Covers vendor processing lag; re-fetched findings are deduplicated.
    default: 3_600_000,
    unit: "ms",
    description: "overlap subtracted from the watermark of a cycle",
    parse: parseInteger(0, 2 ** 31 - 1),
  }),
  backfillStart: option({
    key: "backfillStart",
    env: "BACKFILL_START",
    flag: "backfill-start",
    default: new Date("1970-01-01T00:00:00Z"),
    description: "first run fetches findings changed since this ISO 8601 time",
    parse: parseIsoDate,
  }),
  maxUnackedBatches: option({
    key: "maxUnackedBatches",
    env: "MAX_UNACKED_BATCHES",
    flag: "max-unacked-batches",
    default: 8,
    unit: "batches",
    description: "batches sent to the flusher and not yet acked",
    parse: parseInteger(1, 1000),
  }),
  maxBatchRecords: option({
    key: "maxBatchRecords",
    env: "MAX_BATCH_RECORDS",
    flag: "max-batch-records",
    default: 500,
    unit: "records",
    description: "findings per batch; larger vendor pages are split",
    parse: parseInteger(1, 100_000),
  }),
  lockStaleMs: option({
    key: "lockStaleMs",
    env: "LOCK_STALE_MS",
    flag: "lock-stale-ms",
    default: 10_000,
    unit: "ms",
    description: "age after which a standby takes over a holder's lock",
    parse: parseInteger(2000, 3_600_000),
  }),
  requestTimeoutMs: option({
    key: "requestTimeoutMs",
    env: "REQUEST_TIMEOUT_MS",
    flag: "request-timeout-ms",
    default: 120_000,
    unit: "ms",
    description: "wait for a vendor's response headers, then per body chunk",
    parse: parseInteger(100, 3_600_000),
  }),
  requestMaxAttempts: option({
    key: "requestMaxAttempts",
    env: "REQUEST_MAX_ATTEMPTS",
    flag: "request-max-attempts",
    default: 5,
    unit: "attempts",
    description: "tries per vendor request on 5xx, timeouts and resets",
    parse: parseInteger(1, 100),
  }),
  shutdownGraceMs: option({
    key: "shutdownGraceMs",
    env: "SHUTDOWN_GRACE_MS",
    flag: "shutdown-grace-ms",
    default: 30_000,
    unit: "ms",
    description: "on SIGTERM, wait for the page in flight and its acks",
    parse: parseInteger(0, 3_600_000),
  }),
  once: option({
    key: "once",
    env: "ONCE",
    flag: "once",
    default: false,
    description: "exit 0 after one completed cycle",
    parse: parseBoolean,
  }),
  ...pollerOpsOptionSpecs,
} satisfies OptionSpecs;

export function option<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}

function parseSource(raw: unknown): string {
  const source = parseNonEmptyString(raw);
  try {
    return parseJobRef(VENDORS[0], source).source;
  } catch {
    throw new Error(
      "expected 1-64 characters of a-z, 0-9, '-' and '_', " +
        "starting with a letter or digit",
    );
  }
}

function parseIsoDate(raw: unknown): Date {
  const text = parseNonEmptyString(raw);
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime())) {
    throw new Error(
      "expected an ISO 8601 date, for example 2024-01-01T00:00:00Z",
    );
  }
  return date;
}

function parseRedisUrl(raw: unknown): string {
  const text = parseNonEmptyString(raw);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error("expected a URL such as redis://127.0.0.1:6379");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new Error("expected a redis:// or rediss:// URL");
  }
  return text;
}
