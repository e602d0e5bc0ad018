import { AbortedError, VulnsubError, type Logger } from "@vulnsub/shared";
import type { JobLockHandle, JobLockLike } from "../../src/poll-loop.ts";

/**
 * An in-memory job lock with growing fencing tokens that logs the same
 * events as the shared job lock. `lose()` aborts the current holder's
 * signal, as a compromised lockfile would; the lock is free again once the
 * holder releases it.
 */
export interface FakeLock extends JobLockLike {
  readonly held: boolean;
  readonly acquisitions: number;
  readonly releases: number;
  lose(): void;
}

export function createFakeLock(logger: Logger, firstToken = 1n): FakeLock {
  let nextToken = firstToken;
  let holder: AbortController | null = null;
  let acquisitions = 0;
  let releases = 0;
  let waiters: (() => void)[] = [];

  async function acquire(signal: AbortSignal): Promise<JobLockHandle> {
    if (holder) logger.info({ event: "lock.standby" }, "fake lock: standby");
    while (holder) {
      if (signal.aborted) throw new AbortedError("fake lock");
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    if (signal.aborted) throw new AbortedError("fake lock");

    const controller = new AbortController();
    holder = controller;
    acquisitions++;
    const fencingToken = nextToken++;
    logger.info(
      { event: "lock.acquired", fencingToken: String(fencingToken) },
      "fake lock acquired",
    );
    let token = fencingToken;
    return {
      get fencingToken() {
        return token;
      },
      async refreshFencingToken(floor: bigint) {
        if (nextToken <= floor) nextToken = floor + 1n;
        token = nextToken++;
        return token;
      },
      signal: controller.signal,
      release: async () => {
        if (holder !== controller) return;
        holder = null;
        releases++;
        const ready = waiters;
        waiters = [];
        for (const resolve of ready) resolve();
      },
    };
  }

  return {
    acquire,
    get held() {
      return holder !== null;
    },
    get acquisitions() {
      return acquisitions;
    },
    get releases() {
      return releases;
    },
    lose() {
      if (!holder) return;
      logger.error({ event: "lock.lost" }, "fake lock lost");
      holder.abort(new VulnsubError("lock_lost", "fake lock lost in test"));
    },
  };
}
