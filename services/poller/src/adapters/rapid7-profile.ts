import {
  ConfigError,
  VulnsubError,
  parseInteger,
  parseNonEmptyString,
  parseRetryAfter,
  parseUrl,
  type OptionSpec,
  type OptionSpecs,
} from "@vulnsub/shared";
import type { VendorCredentials, VendorProfile } from "../adapter.ts";

/**
 * The Rapid7 wire profile used by VendorHttp, and the Rapid7 options of the
 * poller configuration. Rapid7 documents no rate limit, advertises none in
 * headers and sets no concurrency limit.
 */
export const rapid7Profile: VendorProfile = {
  vendor: "rapid7",
  authHeaders(credentials) {
    if (credentials.vendor !== "rapid7") {
      throw new VulnsubError(
        "config_invalid",
        `rapid7 profile: got ${credentials.vendor} credentials`,
      );
    }
    return { "X-Api-Key": credentials.apiKey };
  },
  staticHeaders: Object.freeze({
    "Content-Type": "application/json",
    Accept: "application/json",
  }),
  // Rapid7 documents neither 429 nor Retry-After; both are honoured when
  // they appear, on a 429 or a 503.
  parseThrottle(response, _body, now) {
    if (response.status !== 429 && response.status !== 503) return null;
    const waitMs = parseRetryAfter(response.headers.get("retry-after"), now);
    if (waitMs === null) return null;
    return { kind: "rate", waitMs, reason: `http ${response.status}` };
  },
  parseAdvertisedLimit: () => null,
  parseConcurrencyLimit: () => null,
};

export const rapid7OptionSpecs = {
  rapid7BaseUrl: spec<string>({
    key: "rapid7BaseUrl",
    env: "RAPID7_BASE_URL",
    flag: "rapid7-base-url",
    description:
      "Cloud Integration API base URL of the region, for example " +
      "https://us.api.insight.rapid7.com",
    parse: parseUrl,
  }),
  rapid7ApiKey: spec<string>({
    key: "rapid7ApiKey",
    env: "RAPID7_API_KEY",
    secret: true,
    description: "Insight Platform API key, sent as X-Api-Key",
    parse: parseNonEmptyString,
  }),
  rapid7PageSize: spec<number>({
    key: "rapid7PageSize",
    env: "RAPID7_PAGE_SIZE",
    flag: "rapid7-page-size",
    default: 500,
    unit: "assets",
    description:
      "assets per page, at most 500 (the documented maximum); lower it " +
      "when large pages time out",
    parse: parseInteger(1, 500),
  }),
  rapid7DefinitionBatchSize: spec<number>({
    key: "rapid7DefinitionBatchSize",
    env: "RAPID7_DEFINITION_BATCH_SIZE",
    flag: "rapid7-definition-batch-size",
    default: 100,
    unit: "ids",
    description: "vulnerability ids per definition lookup request",
    parse: parseInteger(1, 500),
  }),
  rapid7DefinitionCacheSize: spec<number>({
    key: "rapid7DefinitionCacheSize",
    env: "RAPID7_DEFINITION_CACHE_SIZE",
    flag: "rapid7-definition-cache-size",
    default: 50_000,
    unit: "definitions",
    description: "vulnerability definitions kept in memory (LRU)",
    parse: parseInteger(1, 10_000_000),
  }),
  rapid7MaxBodyBytes: spec<number>({
    key: "rapid7MaxBodyBytes",
    env: "RAPID7_MAX_BODY_BYTES",
    flag: "rapid7-max-body-bytes",
    default: 256 * 1024 * 1024,
    unit: "bytes",
    description: "largest response body read; a larger page is an error",
    parse: parseInteger(1024 * 1024, 2 ** 31 - 1),
  }),
} satisfies OptionSpecs;

/**
 * Credentials from the loaded options. The config loader leaves a missing
 * secret undefined, so this reports it the way the loader reports others.
 */
export function rapid7CredentialsFrom(config: {
  readonly rapid7ApiKey?: string;
}): VendorCredentials {
  if (!config.rapid7ApiKey) {
    throw new ConfigError([
      "rapid7ApiKey (RAPID7_API_KEY or RAPID7_API_KEY_FILE): missing",
    ]);
  }
  return { vendor: "rapid7", apiKey: config.rapid7ApiKey };
}

function spec<T>(option: OptionSpec<T>): OptionSpec<T> {
  return option;
}
