/**
 * Per-subscription API limits of the simulated Qualys account: a rolling
 * window of `requests` calls per `windowMs` and at most `concurrency`
 * calls running at once. Concurrency is checked first because Qualys
 * documents that the concurrency error takes precedence. Blocked calls do
 * not use up the window.
 */
export interface QualysLimitsOptions {
  requests: number;
  windowMs: number;
  concurrency: number;
}

export type AdmitResult =
  | { admitted: true; release: () => void }
  | { admitted: false; code: 1960; callsToFinish: number }
  | { admitted: false; code: 1965; secondsToWait: number };

export function createQualysLimits(options: QualysLimitsOptions) {
  const accepted: number[] = [];
  let running = 0;

  const prune = (nowMs: number) => {
    while (
      accepted.length > 0 &&
      (accepted[0] as number) <= nowMs - options.windowMs
    ) {
      accepted.shift();
    }
  };
  const secondsToWait = (nowMs: number) => {
    if (accepted.length < options.requests) return 0;
    const oldest = accepted[accepted.length - options.requests] as number;
    return Math.max(1, Math.ceil((oldest + options.windowMs - nowMs) / 1000));
  };

  return {
    /** Admits a call at `nowMs`, or returns the limit that blocks it. */
    admit(nowMs: number): AdmitResult {
      prune(nowMs);
      if (running >= options.concurrency) {
        return {
          admitted: false,
          code: 1960,
          callsToFinish: running - options.concurrency + 1,
        };
      }
      if (accepted.length >= options.requests) {
        return {
          admitted: false,
          code: 1965,
          secondsToWait: secondsToWait(nowMs),
        };
      }
      accepted.push(nowMs);
      running++;
      let released = false;
      return {
        admitted: true,
        release: () => {
          if (released) return;
          released = true;
          running--;
        },
      };
    },

    /** Returns the X-RateLimit-* and X-Concurrency-* headers at `nowMs`. */
    headers(nowMs: number, toWaitSec = 0): Record<string, string> {
      prune(nowMs);
      return {
        "X-RateLimit-Limit": String(options.requests),
        "X-RateLimit-Window-Sec": String(
          Math.max(1, Math.ceil(options.windowMs / 1000)),
        ),
        "X-RateLimit-Remaining": String(
          Math.max(0, options.requests - accepted.length),
        ),
        "X-RateLimit-ToWait-Sec": String(toWaitSec),
        "X-Concurrency-Limit-Limit": String(options.concurrency),
        "X-Concurrency-Limit-Running": String(running),
      };
    },

    get running() {
      return running;
    },
  };
}
export type QualysLimits = ReturnType<typeof createQualysLimits>;

/** Formats a wait as the 1965 TEXT does: "23 hours, 57 minutes and 54 seconds". */
export function describeWait(totalSeconds: number): string {
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const parts: string[] = [];
  if (hours > 0) parts.push(`${hours} hours`);
  if (minutes > 0) parts.push(`${minutes} minutes`);
  if (seconds > 0 || parts.length === 0) parts.push(`${seconds} seconds`);
  if (parts.length === 1) return parts[0] as string;
  return `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}
