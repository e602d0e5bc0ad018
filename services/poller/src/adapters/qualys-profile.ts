import { VulnsubError } from "@vulnsub/shared";
import type {
  AdvertisedLimit,
  ThrottleSignal,
  VendorCredentials,
  VendorProfile,
} from "../adapter.ts";
import {
  parseSimpleReturn,
  type SimpleReturn,
} from "./qualys-simple-return.ts";

/**
 * Wire protocol of the Qualys VM API (v2 family):
 * - HTTP Basic auth and an X-Requested-With header on every call;
 * - a blocked call is HTTP 409 with a SIMPLE_RETURN body: code 1965 when
 *   too many calls ran in the window (wait SECONDS_TO_WAIT or the
 *   X-RateLimit-ToWait-Sec header), 1960 when too many calls are running
 *   (wait for one to finish), 1920 the older generic block;
 * - the gateway APIs respond 429 with Retry-After instead;
 * - every answer advertises X-RateLimit-Limit per X-RateLimit-Window-Sec
 *   and X-Concurrency-Limit-Limit.
 */
export const qualysProfile: VendorProfile = {
  vendor: "qualys",
  authHeaders,
  staticHeaders: Object.freeze({ "X-Requested-With": "vulnsub" }),
  parseThrottle,
  parseAdvertisedLimit,
  parseConcurrencyLimit,
};

/** Wait after 1965 or 1920 when neither the body nor headers give one. */
export const DEFAULT_RATE_WAIT_MS = 60_000;
/**
 * Wait after 1960. Qualys gives no time, only how many running calls must
 * finish, so the poller retries soon and backs off on repeats.
 */
export const CONCURRENCY_WAIT_MS = 2_000;

function authHeaders(credentials: VendorCredentials): Record<string, string> {
  if (credentials.vendor !== "qualys") {
    throw new VulnsubError(
      "config_invalid",
      `qualys profile: expected qualys credentials, got ${credentials.vendor}`,
    );
  }
  const pair = `${credentials.username}:${credentials.password}`;
  return {
    Authorization: `Basic ${Buffer.from(pair, "utf8").toString("base64")}`,
  };
}

function parseThrottle(
  response: Response,
  body: string,
  now: Date,
): ThrottleSignal | null {
  const toWaitSec = headerInteger(response, "x-ratelimit-towait-sec") ?? 0;
  if (response.status === 429)
    return parseGatewayThrottle(response, toWaitSec, now);
  if (response.status !== 409) return null;

  const simple = tryParseSimpleReturn(body);
  const code = simple?.code ?? null;
  if (code === "1960") {
    return {
      kind: "concurrency",
      waitMs: Math.max(CONCURRENCY_WAIT_MS, toWaitSec * 1000),
      reason: "qualys 1960",
    };
  }
  if (code === "1965" || code === "1920") {
    const bodySec = Number(simple?.items.SECONDS_TO_WAIT ?? Number.NaN);
    const waitSec = Math.max(Number.isFinite(bodySec) ? bodySec : 0, toWaitSec);
    return {
      kind: "rate",
      waitMs: waitSec > 0 ? waitSec * 1000 : DEFAULT_RATE_WAIT_MS,
      reason: `qualys ${code}`,
    };
  }
  // A 409 without a readable code still blocks when the header says wait.
  if (toWaitSec > 0) {
    return { kind: "rate", waitMs: toWaitSec * 1000, reason: "qualys 409" };
  }
  return null;
}

function parseGatewayThrottle(
  response: Response,
  toWaitSec: number,
  now: Date,
): ThrottleSignal {
  const retryAfter = response.headers.get("retry-after")?.trim() ?? "";
  let waitMs = toWaitSec * 1000;
  if (/^\d+$/.test(retryAfter)) {
    waitMs = Number(retryAfter) * 1000;
  } else if (retryAfter !== "" && !Number.isNaN(Date.parse(retryAfter))) {
    waitMs = Math.max(0, Date.parse(retryAfter) - now.getTime());
  }
  return { kind: "rate", waitMs, reason: "http 429" };
}

function parseAdvertisedLimit(response: Response): AdvertisedLimit | null {
  const requests = headerInteger(response, "x-ratelimit-limit");
  const windowSec = headerInteger(response, "x-ratelimit-window-sec");
  if (!requests || !windowSec) return null;
  return { requests, windowMs: windowSec * 1000 };
}

function parseConcurrencyLimit(response: Response): number | null {
  const limit = headerInteger(response, "x-concurrency-limit-limit");
  return limit && limit > 0 ? limit : null;
}

function headerInteger(response: Response, name: string): number | null {
  const raw = response.headers.get(name)?.trim();
  if (!raw || !/^\d+$/.test(raw)) return null;
  return Number(raw);
}

function tryParseSimpleReturn(body: string): SimpleReturn | null {
  try {
    return parseSimpleReturn(body);
  } catch {
    return null;
  }
}
