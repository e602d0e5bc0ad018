// Ground truth: the finding versions a vendor simulator served in complete
// responses. verify-log checks that the findings log contains each of them
// exactly once.
import { isVendor, type Vendor } from "@vulnsub/shared";

/** One finding version a simulator served. */
export interface ServedVersion {
  findingKey: string;
  version: string;
}

/** Everything one simulator served for one job (vendor + source). */
export interface GroundTruthSet {
  vendor: Vendor;
  source: string;
  served: readonly ServedVersion[];
}

const GROUND_TRUTH_PATH = "/_sim/ground-truth";

/**
 * Fetches a simulator's ground truth. `url` is the simulator's base URL or
 * its /_sim/ground-truth URL; `vendor` is needed only when the response
 * does not name its vendor.
 */
export async function fetchGroundTruth(
  url: string,
  options: { source?: string; vendor?: Vendor; timeoutMs?: number } = {},
): Promise<GroundTruthSet> {
  const target = groundTruthUrl(url);
  const response = await fetch(target, {
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  });
  if (!response.ok) {
    throw new Error(`ground truth ${target}: HTTP ${response.status}`);
  }
  const body: unknown = await response.json();
  return parseGroundTruth(body, {
    source: options.source ?? "default",
    vendor: options.vendor,
    origin: target,
  });
}

/**
 * Parses a ground-truth response: either an array of {findingKey, version}
 * or an object with `vendor` and one array field (`served`, `groundTruth`
 * or `findings`). Throws when neither shape matches.
 */
export function parseGroundTruth(
  body: unknown,
  context: { source: string; vendor?: Vendor; origin: string },
): GroundTruthSet {
  const record = isRecord(body) ? body : undefined;
  const list = Array.isArray(body)
    ? body
    : (record?.served ?? record?.groundTruth ?? record?.findings);
  if (!Array.isArray(list)) {
    throw new Error(
      `ground truth ${context.origin}: expected an array of ` +
        "{findingKey, version} or an object with a served array",
    );
  }

  const vendor =
    record && isVendor(record.vendor) ? record.vendor : context.vendor;
  if (!vendor) {
    throw new Error(
      `ground truth ${context.origin}: response names no vendor; ` +
        "pass it as vendor=URL",
    );
  }
  if (context.vendor && vendor !== context.vendor) {
    throw new Error(
      `ground truth ${context.origin}: served by the ${vendor} ` +
        `simulator, not ${context.vendor}`,
    );
  }
  const source =
    typeof record?.source === "string" ? record.source : context.source;
  return {
    vendor,
    source,
    served: list.map((item, i) => parseServed(item, i, context.origin)),
  };
}

/** Splits a `vendor=URL` argument; a bare URL has no vendor. */
export function parseGroundTruthArgument(argument: string): {
  vendor?: Vendor;
  url: string;
} {
  const match = /^([a-z0-9]+)=(.+)$/.exec(argument);
  if (!match) return { url: argument };
  const [, vendor, url] = match;
  if (!isVendor(vendor)) {
    throw new Error(`--ground-truth ${argument}: unknown vendor ${vendor}`);
  }
  return { vendor, url: url as string };
}

function groundTruthUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, "");
  return trimmed.endsWith(GROUND_TRUTH_PATH)
    ? trimmed
    : trimmed + GROUND_TRUTH_PATH;
}

function parseServed(
  item: unknown,
  index: number,
  origin: string,
): ServedVersion {
  if (
    isRecord(item) &&
    typeof item.findingKey === "string" &&
    typeof item.version === "string"
  ) {
    return { findingKey: item.findingKey, version: item.version };
  }
  throw new Error(
    `ground truth ${origin}: item ${index}: expected {findingKey, version}`,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
