import type { Logger } from "./logger.ts";
import type { PauseGate } from "./pause-gate.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import type { Lease, Semaphore } from "./semaphore.ts";

export interface VendorGateOptions {
  rateLimiter: RateLimiter;
  pauseGate: PauseGate;
  /** Concurrency slots (Qualys calls, Tenable exports); null for none. */
  semaphore?: Semaphore | null;
  logger: Logger;
}

export interface VendorPass {
  /** Time spent waiting for the pause, the slot and the permit, in ms. */
  waitedMs: number;
  /** Redis time of the rate permit, in microseconds since the epoch. */
  grantedAtUs: number;
  /** The concurrency lease, or null without a semaphore. */
  lease: Lease | null;
  /** Frees the concurrency slot; call it when the response is read. */
  release(): Promise<void>;
}

export interface VendorGate {
  /** Waits until one vendor request may start now. */
  acquire(signal?: AbortSignal): Promise<VendorPass>;
}

/**
 * Creates the gate every vendor request passes: it waits for the job's
 * pause to clear, takes a concurrency lease if a semaphore is configured,
 * then takes a rate permit.
 *
 * The permit comes last because it must be used at once: a permit held
 * while waiting for a slot would reach the vendor later than the rate
 * limiter's margin allows. The permit script checks the pause again in the
 * same atomic step, so a pause set while this caller waited for a slot
 * makes it wait again without spending a permit. The caller sends the
 * request right after acquire() and calls release() when done; on an error
 * in between, acquire() frees the lease itself.
 */
export function createVendorGate(options: VendorGateOptions): VendorGate {
  const { rateLimiter, pauseGate } = options;
  const semaphore = options.semaphore ?? null;
  const logger = options.logger.child({ area: "gate" });

  return {
    async acquire(signal) {
      const startedMs = performance.now();
      await pauseGate.waitUntilClear(signal);

      const lease = semaphore ? await semaphore.acquire(signal) : null;
      let grantedAtUs: number;
      try {
        ({ grantedAtUs } = await rateLimiter.acquire(signal));
      } catch (error) {
        await lease?.release();
        throw error;
      }

      const waitedMs = performance.now() - startedMs;
      logger.debug({ event: "gate.passed", durationMs: Math.round(waitedMs) });
      return {
        waitedMs,
        grantedAtUs,
        lease,
        release: async () => {
          await lease?.release();
        },
      };
    },
  };
}
