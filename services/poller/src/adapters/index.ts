import type { OptionSpecs, Vendor } from "@vulnsub/shared";
import type { VendorAdapter, VendorProfile } from "../adapter.ts";
import { credentialEnvNames } from "../credentials.ts";
import {
  createQualysAdapter,
  qualysOptionSpecs,
  qualysProfile,
  type QualysAdapterOptions,
} from "./qualys.ts";
import {
  createRapid7Adapter,
  rapid7OptionSpecs,
  rapid7Profile,
} from "./rapid7.ts";
import {
  createTenableAdapter,
  tenableOptionSpecs,
  tenableProfile,
  type TenableSettings,
} from "./tenable.ts";

/** One vendor's adapter module as the poller core uses it. */
export interface VendorEntry {
  readonly profile: VendorProfile;
  /** Production API server; <VENDOR>_BASE_URL overrides it. */
  readonly defaultBaseUrl: string;
  /** The adapter's own options (page sizes, API version, ...). */
  readonly optionSpecs: OptionSpecs;
  /** Builds the adapter from the base URL and the parsed option values. */
  createAdapter(input: {
    baseUrl: string;
    options: Readonly<Record<string, unknown>>;
  }): VendorAdapter;
}

export type VendorRegistry = Readonly<Record<Vendor, VendorEntry>>;

export const vendorRegistry: VendorRegistry = {
  qualys: {
    profile: qualysProfile,
    defaultBaseUrl: "https://qualysapi.qualys.com",
    optionSpecs: adapterOwnSpecs("qualys", qualysOptionSpecs),
    createAdapter: ({ baseUrl, options }) =>
      createQualysAdapter({
        baseUrl,
        apiVersion:
          options.qualysApiVersion as QualysAdapterOptions["apiVersion"],
        truncationLimit: options.qualysTruncationLimit as number,
        showIgs: options.qualysShowIgs as boolean,
        showResults: options.qualysShowResults as boolean,
        showQds: options.qualysShowQds as boolean,
      }),
  },
  rapid7: {
    profile: rapid7Profile,
    defaultBaseUrl: "https://us.api.insight.rapid7.com",
    optionSpecs: adapterOwnSpecs("rapid7", rapid7OptionSpecs),
    createAdapter: ({ options }) =>
      createRapid7Adapter({
        pageSize: options.rapid7PageSize as number,
        definitionBatchSize: options.rapid7DefinitionBatchSize as number,
        definitionCacheSize: options.rapid7DefinitionCacheSize as number,
        maxBodyBytes: options.rapid7MaxBodyBytes as number,
      }),
  },
  tenable: {
    profile: tenableProfile,
    defaultBaseUrl: "https://cloud.tenable.com",
    optionSpecs: adapterOwnSpecs("tenable", tenableOptionSpecs),
    createAdapter: ({ options }) =>
      createTenableAdapter(options as Partial<TenableSettings>),
  },
};

/**
 * Drops the adapter module's specs for the base URL and credentials: the
 * poller core declares those itself (with production defaults, and
 * credentials from the environment only), so one variable has one meaning.
 */
function adapterOwnSpecs(vendor: Vendor, specs: OptionSpecs): OptionSpecs {
  const coreEnv = new Set([
    `${vendor.toUpperCase()}_BASE_URL`,
    ...credentialEnvNames(vendor),
  ]);
  return Object.fromEntries(
    Object.entries(specs).filter(([, spec]) => !coreEnv.has(spec.env)),
  );
}
