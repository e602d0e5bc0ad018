/**
 * Pieces every vendor simulator shares: a seeded random generator, the
 * ground-truth collector, the quota auditor and fault settings. The vendor
 * servers (qualys.ts, rapid7.ts, tenable.ts) build on these.
 */

/** Deterministic PRNG (mulberry32): the same seed gives the same dataset. */
export function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** Integer in [min, max]. */
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    chance: (probability: number) => next() < probability,
  };
}
export type Random = ReturnType<typeof createRandom>;

/** One finding version the simulator served in a complete 200 response. */
export interface ServedVersion {
  findingKey: string;
  version: string;
}

/**
 * Collects the finding versions served. A vendor server adds a response's
 * versions only after the whole body was written without an injected
 * fault, so a truncated or reset response counts for nothing.
 */
export function createGroundTruth() {
  const served = new Map<string, ServedVersion>();
  return {
    add(versions: Iterable<ServedVersion>) {
      for (const item of versions) {
        served.set(`${item.findingKey}\u0000${item.version}`, item);
      }
    },
    list(): ServedVersion[] {
      return [...served.values()];
    },
    get size() {
      return served.size;
    },
  };
}
export type GroundTruth = ReturnType<typeof createGroundTruth>;

/**
 * Records the arrival time of every counted request and reports each
 * rolling window of `windowMs` in which more than `limit` requests arrived.
 */
export function createQuotaAuditor(limit: number, windowMs: number) {
  const arrivals: number[] = [];
  let exceeded = 0;
  let maxInWindow = 0;
  let start = 0;
  return {
    /** Records a request at `atMs`; returns false when it broke the quota. */
    record(atMs: number): boolean {
      arrivals.push(atMs);
      while ((arrivals[start] as number) <= atMs - windowMs) start++;
      const inWindow = arrivals.length - start;
      maxInWindow = Math.max(maxInWindow, inWindow);
      if (inWindow > limit) {
        exceeded++;
        return false;
      }
      return true;
    },
    report() {
      return {
        limit,
        windowMs,
        requests: arrivals.length,
        maxInWindow,
        windowsExceeded: exceeded,
      };
    },
  };
}
export type QuotaAuditor = ReturnType<typeof createQuotaAuditor>;

/**
 * Fault injection settings. Each probability is per eligible response
 * (data responses: Qualys detection pages, Rapid7 asset pages, Tenable
 * chunks), drawn from the simulator's own fault random stream.
 */
export interface FaultSettings {
  /** Probability of an HTTP 503 with the vendor's error body. */
  serverErrorRate: number;
  /** Probability of a delayed first byte. */
  slowRate: number;
  /** Delay of a slow response, in milliseconds. */
  slowMs: number;
  /** Probability of a connection reset after part of the body. */
  resetRate: number;
  /** Probability of a 200 whose body stops early but ends cleanly. */
  truncateRate: number;
  /** Probability of a 200 whose body is malformed XML or JSON. */
  malformedRate: number;
  /** Probability of a throttling answer (429, or Qualys 409 1960/1965). */
  throttleRate: number;
  /** Tenable: probability that an export ends in ERROR. */
  exportErrorRate: number;
}

export const NO_FAULTS: FaultSettings = Object.freeze({
  serverErrorRate: 0,
  slowRate: 0,
  slowMs: 0,
  resetRate: 0,
  truncateRate: 0,
  malformedRate: 0,
  throttleRate: 0,
  exportErrorRate: 0,
});

/** Applies a partial update from JSON, rejecting unknown or bad fields. */
export function mergeFaults(
  current: FaultSettings,
  update: unknown,
): FaultSettings {
  if (typeof update !== "object" || update === null) {
    throw new Error("fault settings: expected a JSON object");
  }
  const next: Record<string, number> = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (!(key in current)) throw new Error(`fault settings: unknown key ${key}`);
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new Error(`fault settings: ${key}: expected a number >= 0`);
    }
    next[key] = value;
  }
  return Object.freeze(next) as unknown as FaultSettings;
}
