import {
  parseNonEmptyString,
  type OptionSpec,
  type Vendor,
} from "@vulnsub/shared";
import type { VendorCredentials } from "./adapter.ts";

/**
 * Credential options of each vendor. They are secrets: read only from the
 * environment variable or from the file named by `<NAME>_FILE`, never from
 * a flag or the config file, and never printed.
 */
export function credentialSpecs(
  vendor: Vendor,
): Record<string, OptionSpec<string>> {
  const specs: Record<Vendor, [string, string, string][]> = {
    qualys: [
      ["qualysUsername", "QUALYS_USERNAME", "API user name (HTTP Basic)"],
      ["qualysPassword", "QUALYS_PASSWORD", "API user password (HTTP Basic)"],
    ],
    rapid7: [["rapid7ApiKey", "RAPID7_API_KEY", "Insight platform API key"]],
    tenable: [
      ["tenableAccessKey", "TENABLE_ACCESS_KEY", "API access key"],
      ["tenableSecretKey", "TENABLE_SECRET_KEY", "API secret key"],
    ],
  };
  return Object.fromEntries(
    specs[vendor].map(([key, env, description]) => [
      key,
      { key, env, description, secret: true, parse: parseNonEmptyString },
    ]),
  );
}

/** Builds the credentials of `vendor` from resolved option values. */
export function readCredentials(
  vendor: Vendor,
  values: Readonly<Record<string, unknown>>,
): VendorCredentials {
  const text = (key: string) => String(values[key] ?? "");
  switch (vendor) {
    case "qualys":
      return {
        vendor,
        username: text("qualysUsername"),
        password: text("qualysPassword"),
      };
    case "rapid7":
      return { vendor, apiKey: text("rapid7ApiKey") };
    case "tenable":
      return {
        vendor,
        accessKey: text("tenableAccessKey"),
        secretKey: text("tenableSecretKey"),
      };
  }
}

/** Names of the environment variables holding `vendor`'s credentials. */
export function credentialEnvNames(vendor: Vendor): string[] {
  return Object.values(credentialSpecs(vendor)).map((spec) => spec.env);
}
