import { VulnsubError } from "./errors.ts";

/** Vendors vulnsub polls. */
export const VENDORS = ["qualys", "rapid7", "tenable"] as const;
export type Vendor = (typeof VENDORS)[number];

/** One polling job: one vendor account, named by the operator. */
export interface JobRef {
  readonly vendor: Vendor;
  readonly source: string;
}

// Source names become file names (lock files) and Redis key parts, so they
// are restricted to a portable alphabet with no path separators or dots.
const SOURCE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function isVendor(value: unknown): value is Vendor {
  return typeof value === "string" && (VENDORS as readonly string[]).includes(value);
}

/**
 * Validates a vendor and source pair into a JobRef. Rejects any source that
 * could escape the state directory or collide after case folding.
 */
export function parseJobRef(vendor: unknown, source: unknown): JobRef {
  if (!isVendor(vendor)) {
    throw new VulnsubError(
      "job_invalid",
      `invalid vendor ${JSON.stringify(vendor)}: expected one of ${VENDORS.join(", ")}`,
    );
  }
  if (typeof source !== "string" || !SOURCE_PATTERN.test(source)) {
    throw new VulnsubError(
      "job_invalid",
      `invalid source ${JSON.stringify(source)} for ${vendor}: expected 1-64 ` +
        "characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
    );
  }
  return { vendor, source };
}

/** Returns the canonical job id, `vendor:source`, used in logs and metrics. */
export function jobId(job: JobRef): string {
  return `${job.vendor}:${job.source}`;
}
