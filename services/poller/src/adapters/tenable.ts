import {
  parseBoolean,
  parseInteger,
  parseRetryAfter,
  type ConfigOf,
  type OptionSpec,
} from "@vulnsub/shared";
import type { VendorAdapter, VendorProfile } from "../adapter.ts";
import { syncTenable } from "./tenable-sync.ts";

/**
 * Tenable Vulnerability Management adapter: one vulns export per cycle,
 * chunks downloaded as soon as the status lists them, in any order. See
 * tenable-sync.ts for the cycle and tenable-cursor.ts for the cursor.
 */

/** Build version sent in the User-Agent. */
export const TENABLE_BUILD_VERSION = "0.1.0";

/**
 * Wire protocol of Tenable VM: X-ApiKeys auth and the User-Agent form of
 * Tenable's integration guide. The only throttle signal is 429 with
 * retry-after, which both the rate limit and the two-exports concurrency
 * limit send. Tenable advertises no budget in headers.
 */
export const tenableProfile: VendorProfile = {
  vendor: "tenable",
  authHeaders(credentials) {
    if (credentials.vendor !== "tenable") {
      throw new Error(`tenable profile: got ${credentials.vendor} credentials`);
    }
    return {
      "X-ApiKeys":
        `accessKey=${credentials.accessKey};` +
        `secretKey=${credentials.secretKey}`,
    };
  },
  staticHeaders: {
    "User-Agent":
      `Integration/1.0 (vulnsub; vulnsub; Build/${TENABLE_BUILD_VERSION})`,
    Accept: "application/json",
  },
  parseThrottle(response, _body, now) {
    if (response.status !== 429) return null;
    // retry-after is delay-seconds or an HTTP date. Without it, waitMs 0
    // leaves the wait to VendorHttp's growing backoff.
    const waitMs = parseRetryAfter(response.headers.get("retry-after"), now);
    return { kind: "rate", waitMs: waitMs ?? 0, reason: "http 429" };
  },
  parseAdvertisedLimit: () => null,
  parseConcurrencyLimit: () => null,
};

/** Tenable options, each set by flag, environment or config file. */
export const tenableOptionSpecs = {
  tenableNumAssets: {
    key: "tenableNumAssets",
    env: "TENABLE_NUM_ASSETS",
    flag: "tenable-num-assets",
    // pyTenable's default; Tenable accepts 50-5000 assets per chunk.
    default: 500,
    description: "assets per export chunk (Tenable accepts 50-5000)",
    parse: parseInteger(50, 5000),
  } satisfies OptionSpec<number>,
  tenableStatusPollMinMs: {
    key: "tenableStatusPollMinMs",
    env: "TENABLE_STATUS_POLL_MIN_MS",
    flag: "tenable-status-poll-min-ms",
    // pyTenable polls after 2 s, then 1 s longer each time up to 30 s.
    default: 2000,
    unit: "ms",
    description: "minimum (first) wait between export status polls",
    parse: parseInteger(1, 3_600_000),
  } satisfies OptionSpec<number>,
  tenableStatusPollMaxMs: {
    key: "tenableStatusPollMaxMs",
    env: "TENABLE_STATUS_POLL_MAX_MS",
    flag: "tenable-status-poll-max-ms",
    default: 30_000,
    unit: "ms",
    description: "maximum wait between export status polls",
    parse: parseInteger(1, 3_600_000),
  } satisfies OptionSpec<number>,
  tenableIncludeUnlicensed: {
    key: "tenableIncludeUnlicensed",
    env: "TENABLE_INCLUDE_UNLICENSED",
    flag: "tenable-include-unlicensed",
    default: false,
    description: "also export findings of unlicensed assets",
    parse: parseBoolean,
  } satisfies OptionSpec<boolean>,
  tenableMaxChunkBytes: {
    key: "tenableMaxChunkBytes",
    env: "TENABLE_MAX_CHUNK_BYTES",
    flag: "tenable-max-chunk-bytes",
    // A real 50-asset chunk was 1.7 MB; plugin output is capped at 1 MiB
    // per finding, so 512 MiB leaves room for 5000-asset chunks.
    default: 512 * 1024 * 1024,
    unit: "bytes",
    description: "largest chunk body read; a larger chunk fails the cycle",
    parse: parseInteger(1024),
  } satisfies OptionSpec<number>,
  tenableExportAttempts: {
    key: "tenableExportAttempts",
    env: "TENABLE_EXPORT_ATTEMPTS",
    flag: "tenable-export-attempts",
    default: 3,
    description: "exports tried per window after ERROR, CANCELLED or expiry",
    parse: parseInteger(1, 100),
  } satisfies OptionSpec<number>,
  tenableChunkAttempts: {
    key: "tenableChunkAttempts",
    env: "TENABLE_CHUNK_ATTEMPTS",
    flag: "tenable-chunk-attempts",
    // pyTenable downloads a chunk with invalid JSON up to 3 times.
    default: 3,
    description: "downloads of a chunk whose body is cut or not JSON",
    parse: parseInteger(1, 20),
  } satisfies OptionSpec<number>,
};

export type TenableSettings = ConfigOf<typeof tenableOptionSpecs>;

/** Creates the adapter; unset settings take the option defaults. */
export function createTenableAdapter(
  options: Partial<TenableSettings> = {},
): VendorAdapter {
  const settings = { ...defaultSettings(), ...stripUndefined(options) };
  if (settings.tenableStatusPollMaxMs < settings.tenableStatusPollMinMs) {
    throw new RangeError(
      `tenable status poll bounds: max ${settings.tenableStatusPollMaxMs} ms ` +
        `is below min ${settings.tenableStatusPollMinMs} ms`,
    );
  }
  return {
    sync: (cursor, context) => syncTenable(settings, cursor, context),
  };
}

function defaultSettings(): TenableSettings {
  const entries = Object.entries(tenableOptionSpecs).map(([name, spec]) => [
    name,
    spec.default,
  ]);
  return Object.fromEntries(entries) as TenableSettings;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(value).filter(([, item]) => item !== undefined),
  ) as Partial<T>;
}
