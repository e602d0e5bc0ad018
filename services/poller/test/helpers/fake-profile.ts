import type { VendorProfile } from "../../src/adapter.ts";

/**
 * A vendor profile for VendorHttp tests, shaped like the real ones: a 429
 * with retry-after (seconds) is a rate throttle, a 409 whose body contains
 * 1960 is a concurrency throttle, and 1965 a rate throttle with
 * X-RateLimit-ToWait-Sec.
 */
export const fakeProfile: VendorProfile = {
  vendor: "tenable",
  staticHeaders: { "X-Requested-With": "vulnsub-test" },
  authHeaders(credentials) {
    if (credentials.vendor !== "tenable") throw new Error("wrong vendor");
    return {
      "X-ApiKeys": `accessKey=${credentials.accessKey};secretKey=${credentials.secretKey}`,
    };
  },
  parseThrottle(response, body) {
    if (response.status === 429) {
      const seconds = Number(response.headers.get("retry-after"));
      if (!Number.isFinite(seconds) || !response.headers.has("retry-after")) {
        return null;
      }
      return { kind: "rate", waitMs: seconds * 1000, reason: "http 429" };
    }
    if (response.status === 409 && body.includes("1960")) {
      return { kind: "concurrency", waitMs: 0, reason: "qualys 1960" };
    }
    if (response.status === 409 && body.includes("1965")) {
      const seconds = Number(response.headers.get("x-ratelimit-towait-sec"));
      return { kind: "rate", waitMs: seconds * 1000, reason: "qualys 1965" };
    }
    return null;
  },
  parseAdvertisedLimit(response) {
    const limit = Number(response.headers.get("x-ratelimit-limit"));
    const windowSec = Number(response.headers.get("x-ratelimit-window-sec"));
    if (!limit || !windowSec) return null;
    return { requests: limit, windowMs: windowSec * 1000 };
  },
  parseConcurrencyLimit(response) {
    const limit = Number(response.headers.get("x-concurrency-limit-limit"));
    return limit > 0 ? limit : null;
  },
};

export const fakeCredentials = {
  vendor: "tenable",
  accessKey: "access-d41d8cd98f",
  secretKey: "secret-9e107d9d37",
} as const;
