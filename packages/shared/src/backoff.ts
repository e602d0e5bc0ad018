import { AbortedError } from "./errors.ts";

export interface BackoffOptions {
  /** Ceiling of the first attempt's delay, in milliseconds. */
  baseMs: number;
  /** Upper bound of every delay, in milliseconds. */
  maxMs: number;
  /** Uniform random number in [0, 1); injected so tests are exact. */
  random?: () => number;
}

/**
 * Computes the delay before retry `attempt` (0 for the first retry) with
 * bounded exponential backoff and full jitter: a uniform integer in
 * [0, min(maxMs, baseMs * 2^attempt)]. Full jitter spreads the retries of
 * many pollers that failed at the same moment.
 */
export function computeBackoffMs(
  attempt: number,
  options: BackoffOptions,
): number {
  const { baseMs, maxMs } = options;
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`invalid backoff attempt ${attempt}: expected >= 0`);
  }
  if (!(baseMs >= 0) || !(maxMs >= baseMs)) {
    throw new RangeError(
      `invalid backoff bounds baseMs ${baseMs}, maxMs ${maxMs}: ` +
        "expected 0 <= baseMs <= maxMs",
    );
  }

  // 2 ** attempt becomes Infinity past attempt 1023; min() still bounds it.
  const ceilingMs = Math.min(maxMs, baseMs * 2 ** attempt);
  const random = options.random ?? Math.random;
  return Math.floor(random() * (ceilingMs + 1));
}

/**
 * Resolves after `ms` milliseconds, or rejects with AbortedError as soon
 * as `signal` fires. `operation` names the wait in the error message.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  operation = "sleep",
): Promise<void> {
  if (signal?.aborted) {
    return Promise.reject(new AbortedError(operation, signal.reason));
  }

  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError(operation, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
