import { readFileSync } from "node:fs";
import {
  ConfigError,
  VENDORS,
  formatHelp,
  isVendor,
  LOG_ENVIRONMENT_HELP,
  loadConfig,
  parseInteger,
  parseJobRef,
  parseUrl,
  type ConfigOf,
  type JobRef,
  type OptionSpecs,
  type Vendor,
} from "@vulnsub/shared";
import type { VendorCredentials } from "./adapter.ts";
import type { VendorRegistry } from "./adapters/index.ts";
import { credentialSpecs, readCredentials } from "./credentials.ts";
import { createFlusherTls } from "./flusher-tls.ts";
import { withProxyAliases } from "./poller-ops-options.ts";
import { option, pollerOptionSpecs } from "./poller-options.ts";
import { readVendorCa } from "./vendor-transport.ts";

export { pollerOptionSpecs } from "./poller-options.ts";

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
 * credential of the chosen vendor, then one for an unreadable TLS file.
 */
export function loadPollerConfig(
  registry: VendorRegistry,
  argv: readonly string[],
  rawEnv: Readonly<Record<string, string | undefined>>,
): LoadedPollerConfig {
  const env = withProxyAliases(rawEnv);
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
  const config = buildConfig(registry, values);
  checkRetryBounds(config);
  checkTlsFiles(config);
  return { config, help: false };
}

/** Help text listing every flag of every vendor. */
export function formatPollerHelp(registry: VendorRegistry): string {
  const options = formatHelp(
    USAGE,
    allPollerOptionSpecs(registry),
    "Polls one vendor account and streams its findings to the flusher.\n" +
      "Credentials come only from the environment or from <NAME>_FILE.",
  );
  return `${options}\n\n${LOG_ENVIRONMENT_HELP}`;
}

/** Returns every option of the poller, for all vendors, in help order. */
export function allPollerOptionSpecs(registry: VendorRegistry): OptionSpecs {
  const all: OptionSpecs = { ...pollerOptionSpecs };
  for (const vendor of VENDORS)
    Object.assign(all, vendorSpecs(registry, vendor));
  return all;
}

function buildConfig(
  registry: VendorRegistry,
  values: Record<string, unknown>,
): PollerConfig {
  const common = values as unknown as CommonConfig;
  const vendor = common.vendor;
  const entry = registry[vendor];
  const override = (name: string) =>
    values[`${vendor}${name}`] as number | null;
  const vendorOptions: Record<string, unknown> = {};
  for (const key of Object.keys(entry.optionSpecs))
    vendorOptions[key] = values[key];

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
 * Specs that depend on the vendor: base URL, credentials, overrides of the
 * shared limits, and the adapter's own options.
 */
function vendorSpecs(registry: VendorRegistry, vendor: Vendor): OptionSpecs {
  const entry = registry[vendor];
  const upper = vendor.toUpperCase();
  const override = (
    name: string,
    env: string,
    spec: { min: number; unit: string; what: string; default?: number },
  ) => ({
    [`${vendor}${name}`]: option<number | null>({
      key: `${vendor}${name}`,
      env: `${upper}_${env}`,
      flag: `${vendor}-${env.toLowerCase().replaceAll("_", "-")}`,
      default: spec.default ?? null,
      unit: spec.unit,
      description: `${spec.what} for ${vendor}; overrides ${env}`,
      parse: parseInteger(spec.min, 86_400_000),
    }),
  });

  return {
    [`${vendor}BaseUrl`]: option({
      key: `${vendor}BaseUrl`,
      env: `${upper}_BASE_URL`,
      flag: "base-url",
      default: entry.defaultBaseUrl,
      description:
        `${vendor} API base URL (the flag applies with --vendor ${vendor})`,
      parse: parseUrl,
    }),
    ...credentialSpecs(vendor),
    ...override("RateLimitRpm", "RATE_LIMIT_RPM", {
      min: 1,
      unit: "requests per window",
      what: "requests per rate limit window",
    }),
    ...override("RateLimitWindowMs", "RATE_LIMIT_WINDOW_MS", {
      min: 1,
      unit: "ms",
      what: "rate limit window",
    }),
    ...override("MaxConcurrentRequests", "MAX_CONCURRENT_REQUESTS", {
      min: 0,
      unit: "requests",
      what: "requests running at once (0 = no limit)",
      // Qualys runs at most 2 calls of a subscription at once by default
      // and rejects a third with 409 code 1960.
      default: vendor === "qualys" ? 2 : undefined,
    }),
    ...entry.optionSpecs,
  };
}

function checkRetryBounds(config: PollerConfig): void {
  if (config.cycleRetryMaxMs >= config.cycleRetryBaseMs) return;
  throw new ConfigError([
    `cycleRetryMaxMs (CYCLE_RETRY_MAX_MS): ${config.cycleRetryMaxMs}: ` +
      `expected at least cycleRetryBaseMs (${config.cycleRetryBaseMs})`,
  ]);
}

// Reads the TLS files once at start, so a bad path exits with a config
// error instead of failing every connection later.
function checkTlsFiles(config: PollerConfig): void {
  createFlusherTls(config);
  if (config.vendorCaFile) readVendorCa(config.vendorCaFile);
}

function missingCredentials(
  vendor: Vendor,
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  return Object.values(credentialSpecs(vendor))
    // An empty X or X_FILE is a candidate the full parse reports as bad.
    .filter(
      (spec) =>
        env[spec.env] === undefined && env[`${spec.env}_FILE`] === undefined,
    )
    .map((spec) => `${spec.key} (${spec.env} or ${spec.env}_FILE): missing`);
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
    const parsed = JSON.parse(readFileSync(file, "utf8")) as {
      vendor?: unknown;
    };
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

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
