/**
 * Job lock: at most one poller works a job (vendor + source) at a time;
 * the others wait as standby and take over when the holder stops.
 *
 * Invariants:
 * - The lock is a directory created with mkdir (proper-lockfile) beside
 *   an owner file naming the holder. The holder refreshes the directory's
 *   mtime every updateMs; a standby may take it over once the mtime is
 *   older than staleMs (host clock).
 * - The holder treats the lock as lost once staleMs - safetyMs has passed
 *   since the mtime it last wrote, on both the monotonic and the wall
 *   clock, before any standby may take over. `handle.signal.aborted`
 *   checks this deadline whenever it is read, so a process resumed after a
 *   long pause (SIGSTOP, VM freeze) sees the loss before its next send,
 *   whatever order its overdue timers run in.
 * - Once lost, this process never touches the lock directory again, so it
 *   cannot remove a lock that a standby took over.
 * - Every acquisition takes a new fencing token (Redis INCR), so a token
 *   from an older holder is always smaller; the flusher rejects it. The
 *   lock alone cannot stop a process paused between its check and its
 *   send; the token does.
 *
 * Takeover window: a standby retries every retryMs and takes over once
 * the mtime is staleMs old. A holder refreshed at most updateMs before it
 * died, so a standby takes over between staleMs - updateMs and staleMs +
 * retryMs after the holder is killed: 7.5 s to 11 s with the defaults
 * (staleMs 10 s, updateMs 2.5 s, retryMs 1 s). File systems that store
 * whole seconds add up to 1 s. Holder and standbys must read the same
 * clock: one host, or a shared file system with synchronized clocks.
 *
 * Disk layout, under `<stateDir>/locks/`:
 * - `<vendor>.<source>`: owner file, JSON {formatVersion, lockId, pid,
 *   hostname, acquiredAt, fencingToken}, replaced atomically by rename;
 * - `<vendor>.<source>.lock/`: the lock directory, empty.
 *
 * Crash behaviour:
 * - Killed before mkdir: nothing held. Killed after mkdir: the directory
 *   goes stale and a standby takes over after about staleMs.
 * - Killed after mkdir but before the owner file is written: the old owner
 *   file names a previous holder until the next holder rewrites it.
 * - Killed while waiting for a fencing token: as above. Redis may have
 *   issued a token that nobody uses; later tokens are still larger.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, resolve } from "node:path";
import type { Redis } from "ioredis";
import lockfile from "proper-lockfile";
import { sleep } from "./backoff.ts";
import { AbortedError, VulnsubError } from "./errors.ts";
import { nextFencingToken } from "./fencing.ts";
import { jobId, parseJobRef, type JobRef } from "./job.ts";
import { errorFields, type Logger } from "./logger.ts";
import { retryWhileRedisUnavailable } from "./redis-client.ts";
import type { RedisKeys } from "./redis-keys.ts";

export interface JobLockOptions {
  stateDir: string;
  job: JobRef;
  /** Age of the lock's mtime after which a standby takes over; 10000 ms. */
  staleMs?: number;
  /** Refresh interval of the mtime; staleMs / 4, within 1000..staleMs/2. */
  updateMs?: number;
  /** Standby retry interval, milliseconds; 1000. */
  retryMs?: number;
  redis: Redis;
  keys: RedisKeys;
  logger: Logger;
}

export interface JobLockHandle {
  /** Token of this acquisition; larger than every earlier holder's. */
  readonly fencingToken: bigint;
  /**
   * Aborted when the lock is lost (reason code lock_lost) or released
   * (reason code aborted). Reading `aborted` also checks the refresh
   * deadline, so check it right before each send.
   */
  readonly signal: AbortSignal;
  /** Same as !signal.aborted. */
  isHeld(): boolean;
  /** Takes a new token above `floor` (the flusher's newest), see fencing. */
  refreshFencingToken(floor: bigint): Promise<bigint>;
  /** Removes the lock unless it was lost; safe to call twice. */
  release(): Promise<void>;
}

export interface JobLock {
  /** Owner file path; the lock directory is this path plus ".lock". */
  readonly path: string;
  /** Waits as standby until the lock is free, then takes it. */
  acquire(signal?: AbortSignal): Promise<JobLockHandle>;
}

/** Creates the lock of one job; rejects job names that could escape. */
export function createJobLock(options: JobLockOptions): JobLock {
  const job = parseJobRef(options.job.vendor, options.job.source);
  const path = lockPath(options.stateDir, job);
  const staleMs = options.staleMs ?? 10_000;
  if (!Number.isInteger(staleMs) || staleMs < 2000) {
    throw new RangeError(`invalid lock staleMs ${staleMs}: expected >= 2000`);
  }
  // proper-lockfile clamps the refresh interval the same way.
  const updateMs = Math.max(
    1000,
    Math.min(options.updateMs ?? staleMs / 4, staleMs / 2),
  );
  const retryMs = options.retryMs ?? 1000;
  if (!(retryMs >= 10)) {
    throw new RangeError(`invalid lock retryMs ${retryMs}: expected >= 10`);
  }
  const logger = options.logger.child({ area: "lock", job: jobId(job) });
  const settings = { ...options, job, path, staleMs, updateMs, logger };

  return {
    path,
    async acquire(signal) {
      await mkdir(dirname(path), { recursive: true });
      const startedMs = performance.now();
      let standbyLogged = false;

      for (;;) {
        if (signal?.aborted) {
          throw new AbortedError(`lock ${path}`, signal.reason);
        }
        const tracker = createLockTracker(staleMs);
        const holding = await tryLock(settings, tracker);
        if (holding) {
          try {
            return await finishAcquire(settings, holding, startedMs, signal);
          } catch (error) {
            // Lost while waiting for the fencing token: stand by again.
            if (holding.state !== "lost" || signal?.aborted) throw error;
          }
        }
        if (!standbyLogged) {
          standbyLogged = true;
          logger.info(
            {
              event: "lock.standby",
              path,
              holder: await readOwner(path).catch(() => null),
            },
            "job lock held by another poller; waiting as standby",
          );
        }
        await sleep(retryMs, signal, `lock ${path}`);
      }
    },
  };
}

/**
 * Returns `<stateDir>/locks/<vendor>.<source>`, after checking that path
 * resolution kept it directly inside the locks folder.
 */
export function lockPath(stateDir: string, job: JobRef): string {
  const checked = parseJobRef(job.vendor, job.source);
  const folder = resolve(stateDir, "locks");
  const name = `${checked.vendor}.${checked.source}`;
  const path = resolve(folder, name);
  if (dirname(path) !== folder || basename(path) !== name) {
    throw new VulnsubError(
      "job_invalid",
      `job ${jobId(checked)}: lock path ${path} escapes ${folder}`,
    );
  }
  return path;
}

interface LockSettings {
  job: JobRef;
  path: string;
  staleMs: number;
  updateMs: number;
  redis: Redis;
  keys: RedisKeys;
  logger: Logger;
}

/** One acquisition: "held" until lost or released, never back. */
interface Holding {
  readonly lockId: string;
  readonly tracker: LockTracker;
  readonly controller: AbortController;
  state: "held" | "lost" | "released";
  unlock: () => Promise<void>;
}

/** Takes the lock once; returns null when another process holds it. */
async function tryLock(
  settings: LockSettings,
  tracker: LockTracker,
): Promise<Holding | null> {
  const { path } = settings;
  const holding: Holding = {
    lockId: randomBytes(8).toString("hex"),
    tracker,
    controller: new AbortController(),
    state: "held",
    unlock: async () => {},
  };

  try {
    holding.unlock = await lockfile.lock(path, {
      stale: settings.staleMs,
      update: settings.updateMs,
      realpath: false,
      retries: 0,
      lockfilePath: `${path}.lock`,
      fs: tracker.fs,
      onCompromised: (error) =>
        loseLock(settings, holding, `compromised: ${error.message}`),
    });
  } catch (error) {
    if ((error as { code?: unknown }).code === "ELOCKED") return null;
    throw new VulnsubError(
      "lock_unavailable",
      `job lock ${path}: cannot take it: ${String(error)}`,
      { cause: error },
    );
  }
  installDeadlineCheck(settings, holding);
  return holding;
}

/** Marks the lock lost: poisons the tracker, aborts, logs lock.lost. */
function loseLock(settings: LockSettings, holding: Holding, reason: string) {
  if (holding.state !== "held") return;
  holding.state = "lost";
  holding.tracker.poison();
  const { path, logger } = settings;
  logger.error(
    { event: "lock.lost", path, reason },
    `job lock lost: ${reason}`,
  );
  holding.controller.abort(
    new VulnsubError("lock_lost", `job lock ${path}: lost: ${reason}`),
  );
  // Stops proper-lockfile's refresh. The poisoned fs keeps the directory,
  // which may belong to another holder by now.
  void holding.unlock().catch(() => {});
}

/**
 * Makes `signal.aborted` and `signal.throwIfAborted()` check the refresh
 * deadline synchronously on every read, and lose the lock when it passed.
 */
function installDeadlineCheck(settings: LockSettings, holding: Holding) {
  const signal = holding.controller.signal;
  const check = () => {
    if (holding.state === "held" && holding.tracker.deadlinePassed()) {
      loseLock(settings, holding, "not refreshed within the stale time");
    }
    return holding.state !== "held";
  };
  Object.defineProperty(signal, "aborted", { get: check });
  Object.defineProperty(signal, "throwIfAborted", {
    value: () => {
      if (check()) throw signal.reason;
    },
  });
}

async function finishAcquire(
  settings: LockSettings,
  holding: Holding,
  startedMs: number,
  signal: AbortSignal | undefined,
): Promise<JobLockHandle> {
  const { path, logger, redis, keys, job } = settings;
  const { controller } = holding;
  const owner = {
    formatVersion: 1,
    lockId: holding.lockId,
    pid: process.pid,
    hostname: hostname(),
    acquiredAt: new Date().toISOString(),
  };
  const timer = startOwnerCheck(settings, holding);
  let fencingToken = 0n;

  const release = async () => {
    clearInterval(timer);
    if (holding.state !== "held") return;
    holding.state = "released";
    await holding.unlock().catch(() => {});
    controller.abort(new AbortedError(`job lock ${path} released`));
    logger.info({ event: "lock.released", path }, "job lock released");
  };
  const takeToken = async (floor: bigint) => {
    const stop = signal
      ? AbortSignal.any([signal, controller.signal])
      : controller.signal;
    fencingToken = await retryWhileRedisUnavailable(
      () => nextFencingToken(redis, keys, job, floor),
      { redis, logger, signal: stop, operation: `fencing token ${jobId(job)}` },
    );
    await writeOwner(path, { ...owner, fencingToken: String(fencingToken) });
    return fencingToken;
  };

  try {
    await writeOwner(path, { ...owner, fencingToken: null });
    await takeToken(0n);
  } catch (error) {
    await release();
    throw error;
  }

  logger.info(
    {
      event: "lock.acquired",
      path,
      fencingToken: String(fencingToken),
      durationMs: Math.round(performance.now() - startedMs),
    },
    "job lock acquired",
  );
  return {
    get fencingToken() {
      return fencingToken;
    },
    signal: controller.signal,
    isHeld: () => !controller.signal.aborted,
    refreshFencingToken: takeToken,
    release,
  };
}

/**
 * Checks, every min(1000, updateMs / 2) ms, the refresh deadline, that the
 * lock directory still carries an mtime this process wrote, and that the
 * owner file still names this lock. Never throws.
 */
function startOwnerCheck(settings: LockSettings, holding: Holding) {
  const { path } = settings;
  const lose = (reason: string) => loseLock(settings, holding, reason);
  const run = async () => {
    if (holding.controller.signal.aborted) return clearInterval(timer);
    try {
      const stat = await fs.promises.stat(`${path}.lock`);
      if (!holding.tracker.isOwnMtime(stat.mtime.getTime())) {
        const mtime = stat.mtime.toISOString();
        return lose(`lock directory mtime changed to ${mtime}`);
      }
      const owner = await readOwner(path);
      if (owner?.lockId !== holding.lockId) {
        return lose(`owner file names pid ${owner?.pid ?? "unknown"}`);
      }
    } catch (error) {
      if ((error as { code?: unknown }).code === "ENOENT") {
        return lose("lock directory removed");
      }
      settings.logger.warn(
        { event: "lock.check_failed", path, ...errorFields(error) },
        "cannot check the job lock; relying on its refresh deadline",
      );
    }
  };
  const intervalMs = Math.min(1000, settings.updateMs / 2);
  const timer = setInterval(() => void run(), intervalMs);
  timer.unref?.();
  return timer;
}

interface OwnerRecord {
  lockId?: string;
  pid?: number;
  hostname?: string;
  acquiredAt?: string;
  fencingToken?: string | null;
}

async function writeOwner(path: string, owner: Record<string, unknown>) {
  const temp = `${path}.${String(owner.lockId)}.tmp`;
  await writeFile(temp, `${JSON.stringify(owner)}\n`);
  await rename(temp, path);
}

/** Reads the owner file; null when missing or not an owner record. */
async function readOwner(path: string): Promise<OwnerRecord | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return null;
    throw error;
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return null;
    const { lockId, pid, hostname, acquiredAt } = value as OwnerRecord;
    return {
      lockId: typeof lockId === "string" ? lockId : undefined,
      pid: typeof pid === "number" ? pid : undefined,
      hostname: typeof hostname === "string" ? hostname : undefined,
      acquiredAt: typeof acquiredAt === "string" ? acquiredAt : undefined,
    };
  } catch {
    return null;
  }
}

type LockTracker = ReturnType<typeof createLockTracker>;

/**
 * Wraps node:fs for proper-lockfile to learn each mtime it writes to the
 * lock directory, and from it the deadline by which a standby could take
 * over. After poison() the wrapper no longer changes the directory: utimes
 * fails with ENOENT (proper-lockfile then stops refreshing) and rmdir
 * succeeds without removing anything.
 */
function createLockTracker(staleMs: number) {
  // Covers clock reads and the time a standby's stat takes to its mkdir.
  const safetyMs = Math.min(1000, staleMs / 8);
  let poisoned = false;
  let monoDeadline = -Infinity;
  let wallDeadline = -Infinity;
  const ownMtimes: number[] = [];
  let pendingMtime: number | null = null;

  const extend = (mtimeMs: number, callMono: number, callWall: number) => {
    wallDeadline = mtimeMs + staleMs - safetyMs;
    monoDeadline = callMono + (mtimeMs - callWall) + staleMs - safetyMs;
  };
  const deadlinePassed = () =>
    performance.now() >= monoDeadline || Date.now() >= wallDeadline;

  const trackedFs = {
    ...fs,
    mkdir(path: fs.PathLike, callback: (error: Error | null) => void) {
      const callMono = performance.now();
      const callWall = Date.now();
      fs.mkdir(path, (error) => {
        if (!error) extend(callWall, callMono, callWall);
        callback(error);
      });
    },
    utimes(
      path: fs.PathLike,
      atime: Date,
      mtime: Date,
      callback: (error: Error | null) => void,
    ) {
      if (poisoned) return callback(enoent(path));
      // A refresh that starts after the deadline may land on a directory a
      // standby just created; it must not extend the deadline.
      const valid = !deadlinePassed();
      const callMono = performance.now();
      const callWall = Date.now();
      pendingMtime = mtime.getTime();
      fs.utimes(path, atime, mtime, (error) => {
        pendingMtime = null;
        if (!error && valid && !poisoned) {
          ownMtimes.push(mtime.getTime());
          if (ownMtimes.length > 2) ownMtimes.shift();
          extend(mtime.getTime(), callMono, callWall);
        }
        callback(error);
      });
    },
    rmdir(path: fs.PathLike, callback: (error: Error | null) => void) {
      if (poisoned) return callback(null);
      fs.rmdir(path, callback);
    },
    rmdirSync(path: fs.PathLike) {
      if (!poisoned) fs.rmdirSync(path);
    },
  };

  return {
    fs: trackedFs,
    deadlinePassed,
    poison() {
      poisoned = true;
    },
    /** True for an mtime this process wrote, or that mtime in seconds. */
    isOwnMtime(mtimeMs: number) {
      const candidates =
        pendingMtime === null ? ownMtimes : [...ownMtimes, pendingMtime];
      return candidates.some(
        (own) => own === mtimeMs || Math.floor(own / 1000) * 1000 === mtimeMs,
      );
    },
  };
}

function enoent(path: fs.PathLike) {
  return Object.assign(new Error(`ENOENT: lock released, ${String(path)}`), {
    code: "ENOENT",
  });
}
