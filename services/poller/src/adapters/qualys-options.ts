import {
  parseBoolean,
  parseEnum,
  parseInteger,
  parseNonEmptyString,
  parseUrl,
  type OptionSpec,
  type OptionSpecs,
} from "@vulnsub/shared";

export const QUALYS_API_VERSIONS = ["2.0", "3.0", "4.0", "5.0"] as const;
export type QualysApiVersion = (typeof QUALYS_API_VERSIONS)[number];

/**
 * Options of a Qualys job. The API version is configurable because the
 * detection API path carries it (/api/2.0 to /api/5.0).
 */
export const qualysOptionSpecs = {
  qualysBaseUrl: option({
    key: "qualysBaseUrl",
    env: "QUALYS_BASE_URL",
    flag: "qualys-base-url",
    description:
      "API server of the subscription's platform, for example " +
      "https://qualysapi.qg2.apps.qualys.com",
    parse: parseUrl,
  }),
  qualysUsername: option({
    key: "qualysUsername",
    env: "QUALYS_USERNAME",
    flag: "qualys-username",
    description: "API user name (HTTP Basic auth)",
    parse: parseNonEmptyString,
  }),
  qualysPassword: option({
    key: "qualysPassword",
    env: "QUALYS_PASSWORD",
    secret: true,
    description: "API user password (HTTP Basic auth)",
    parse: parseNonEmptyString,
  }),
  qualysApiVersion: option<QualysApiVersion>({
    key: "qualysApiVersion",
    env: "QUALYS_API_VERSION",
    flag: "qualys-api-version",
    default: "2.0",
    description: "version in the detection API path /api/<version>/fo/...",
    parse: parseEnum(QUALYS_API_VERSIONS),
  }),
  qualysTruncationLimit: option({
    key: "qualysTruncationLimit",
    env: "QUALYS_TRUNCATION_LIMIT",
    flag: "qualys-truncation-limit",
    // 1000 is the Qualys default page size; much larger pages risk
    // server-side timeouts, much smaller ones cost more calls of the quota.
    default: 1000,
    unit: "hosts",
    description: "host records per detection page (truncation_limit)",
    parse: parseInteger(1, 1_000_000),
  }),
  qualysShowIgs: option({
    key: "qualysShowIgs",
    env: "QUALYS_SHOW_IGS",
    flag: "qualys-show-igs",
    // Off by default: information-gathered QIDs are inventory facts, not
    // vulnerabilities, and they multiply the page size.
    default: false,
    description: "also fetch Info (information gathered) detections",
    parse: parseBoolean,
  }),
  qualysShowResults: option({
    key: "qualysShowResults",
    env: "QUALYS_SHOW_RESULTS",
    flag: "qualys-show-results",
    default: true,
    description: "fetch each detection's RESULTS text (the scan evidence)",
    parse: parseBoolean,
  }),
  qualysShowQds: option({
    key: "qualysShowQds",
    env: "QUALYS_SHOW_QDS",
    flag: "qualys-show-qds",
    default: false,
    description: "fetch the Qualys Detection Score (QDS) of each detection",
    parse: parseBoolean,
  }),
} satisfies OptionSpecs;

function option<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}
