import { readFileSync } from "node:fs";
import {
  ConfigError,
  VENDORS,
  formatHelp,
  isVendor,
  loadConfig,
  parseEnum,
  parseHostPort,
  parseInteger,
  parseJobRef,
  parseNonEmptyString,
  parseBoolean,
  parseUrl,
  type ConfigOf,
  type JobRef,
  type OptionSpec,
  type OptionSpecs,
  type Vendor,
} from "@vulnsub/shared";
import type { VendorCredentials } from "./adapter.ts";
import type { VendorRegistry } from "./adapters/index.ts";
import { credentialSpecs, readCredentials } from "./credentials.ts";

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
  metricsListen: option<string | null>({
    key: "metricsListen",
    env: "METRICS_LISTEN",
    flag: "metrics-listen",
    default: "127.0.0.1:0",
    description: 'host:port of /metrics and /healthz; "off" disables them',
    parse: (raw) => {
      if (raw === "off") return null;
      parseHostPort(raw);
      return parseNonEmptyString(raw);
    },
  }),
  healthStaleFactor: option({
    key: "healthStaleFactor",
    env: "HEALTH_STALE_FACTOR",
    flag: "health-stale-factor",
    default: 3,
    unit: "poll intervals",
    description: "/healthz fails when no cycle completed for this long",
    parse: parseInteger(1, 1000),
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
} satisfies OptionSpecs;

type CommonConfig = ConfigOf<typeof pollerOptionSpecs>;

/** The poller's configuration, resolved and validated. */
export interface PollerConfig
  extends Omit<CommonConfig, "redisUrl" | "redisHost" | "redisPort"> {
  readonly job: JobRef;
  readonly redisUrl: string;
  readonly baseUrl: string;
  readonly credentials: VendorCredentials;
  /** Per-vendor override, else the common value. */
  readonly rateLimit: { requests: number; windowMs: number };
  readonly maxConcurrentRequests: number;
  /** Values of the vendor adapter's own options, by key. */
  readonly vendorOptions: Readonly<Record<string, unknown>>;
}

export interface LoadedPollerConfig {
  /** Null when --help was given. */
  config: PollerConfig | null;
  help: boolean;
}

export const USAGE =
  "usage: bun run services/poller --vendor qualys|rapid7|tenable " +
  "[--source NAME] [--once] [options]";

/**
 * Parses flags, environment and config file into a frozen PollerConfig.
 * Throws one ConfigError listing every bad field, including each missing
 * credential of the chosen vendor.
 */
export function loadPollerConfig(
  registry: VendorRegistry,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): LoadedPollerConfig {
  const vendor = peekVendor(argv, env);
  const specs = vendor
    ? { ...pollerOptionSpecs, ...vendorSpecs(registry, vendor) }
    : pollerOptionSpecs;
  const credentialIssues = vendor ? missingCredentials(vendor, env) : [];

  let loaded: ReturnType<typeof loadConfig<typeof specs>>;
  try {
    loaded = loadConfig(specs, { argv, env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError([...error.issues, ...credentialIssues]);
  }
  if (loaded.help) return { config: null, help: true };
  if (credentialIssues.length > 0) throw new ConfigError(credentialIssues);
  if (loaded.positionals.length > 0) {
    throw new ConfigError([
      `unexpected arguments: ${loaded.positionals.join(" ")}`,
    ]);
  }

  const values = loaded.config as Record<string, unknown>;
  return { config: buildConfig(registry, values), help: false };
}

/** Help text listing every flag of every vendor. */
export function formatPollerHelp(registry: VendorRegistry): string {
  const all: OptionSpecs = { ...pollerOptionSpecs };
  for (const vendor of VENDORS) Object.assign(all, vendorSpecs(registry, vendor));
  return formatHelp(
    USAGE,
    all,
    "Polls one vendor account and streams its findings to the flusher.\n" +
      "Credentials come only from the environment or from <NAME>_FILE.",
  );
}

function buildConfig(
  registry: VendorRegistry,
  values: Record<string, unknown>,
): PollerConfig {
  const common = values as unknown as CommonConfig;
  const vendor = common.vendor;
  const entry = registry[vendor];
  const override = (name: string) => values[`${vendor}${name}`] as number | null;
  const vendorOptions: Record<string, unknown> = {};
  for (const key of Object.keys(entry.optionSpecs)) vendorOptions[key] = values[key];

  const { redisHost, redisPort, redisUrl, ...rest } = common;
  return Object.freeze({
    ...rest,
    job: parseJobRef(vendor, common.source),
    redisUrl: redisUrl ?? `redis://${formatHost(redisHost)}:${redisPort}`,
    baseUrl: values[`${vendor}BaseUrl`] as string,
    credentials: readCredentials(vendor, values),
    rateLimit: {
      requests: override("RateLimitRpm") ?? common.rateLimitRpm,
      windowMs: override("RateLimitWindowMs") ?? common.rateLimitWindowMs,
    },
    maxConcurrentRequests:
      override("MaxConcurrentRequests") ?? common.maxConcurrentRequests,
    vendorOptions: Object.freeze(vendorOptions),
  });
}

/**
 * Specs that depend on the vendor: base URL, credentials, rate limit
 * overrides, and the adapter's own options.
 */
function vendorSpecs(registry: VendorRegistry, vendor: Vendor): OptionSpecs {
  const entry = registry[vendor];
  const upper = vendor.toUpperCase();
  const overrideSpec = (name: string, env: string, what: string, unit: string) =>
    option<number | null>({
      key: `${vendor}${name}`,
      env: `${upper}_${env}`,
      flag: `${vendor}-${env.toLowerCase().replaceAll("_", "-")}`,
      default: vendor === "qualys" && name === "MaxConcurrentRequests" ? 2 : null,
      unit,
      description: `${what} for ${vendor}; overrides ${env}`,
      parse: parseInteger(name === "MaxConcurrentRequests" ? 0 : 1, 86_400_000),
    });

  return {
    [`${vendor}BaseUrl`]: option({
      key: `${vendor}BaseUrl`,
      env: `${upper}_BASE_URL`,
      flag: "base-url",
      default: entry.defaultBaseUrl,
      description: `${vendor} API base URL`,
      parse: parseUrl,
    }),
    ...credentialSpecs(vendor),
    [`${vendor}RateLimitRpm`]: overrideSpec(
      "RateLimitRpm",
      "RATE_LIMIT_RPM",
      "requests per window",
      "requests per window",
    ),
    [`${vendor}RateLimitWindowMs`]: overrideSpec(
      "RateLimitWindowMs",
      "RATE_LIMIT_WINDOW_MS",
      "rate limit window",
      "ms",
    ),
    // Qualys allows 2 running calls per subscription by default.
    [`${vendor}MaxConcurrentRequests`]: overrideSpec(
      "MaxConcurrentRequests",
      "MAX_CONCURRENT_REQUESTS",
      "requests running at once (0 = no limit)",
      "requests",
    ),
    ...entry.optionSpecs,
  };
}

function missingCredentials(
  vendor: Vendor,
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  return Object.values(credentialSpecs(vendor))
    .filter((spec) => !env[spec.env] && !env[`${spec.env}_FILE`])
    .map(
      (spec) => `${spec.key} (${spec.env} or ${spec.env}_FILE): missing`,
    );
}

// The vendor decides which specs apply, so it is read before the full parse;
// an invalid or missing vendor is reported by that parse.
function peekVendor(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Vendor | null {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--vendor") return asVendor(argv[i + 1]);
    if (arg.startsWith("--vendor=")) return asVendor(arg.slice(9));
  }
  if (env.VENDOR) return asVendor(env.VENDOR);
  const file = configFileArgument(argv) ?? env.VULNSUB_CONFIG;
  if (!file) return null;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { vendor?: unknown };
    return asVendor(parsed.vendor);
  } catch {
    return null;
  }
}

function configFileArgument(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--config") return argv[i + 1];
    if (arg.startsWith("--config=")) return arg.slice(9);
  }
  return undefined;
}

function asVendor(value: unknown): Vendor | null {
  return isVendor(value) ? value : null;
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
    throw new Error("expected an ISO 8601 date, for example 2024-01-01T00:00:00Z");
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

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function option<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}
