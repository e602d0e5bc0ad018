/**
 * Job state: per job, the durable cursor, the newest fencing token and
 * the count of findings written, kept in a state file next to the log.
 *
 * The cursor lives in the flusher and is committed after the data. A
 * batch's cursor enters this store only after the log fsync that covers
 * the batch and every earlier batch of its stream, and the state file is
 * written only after that fsync. So the durable cursor never points past
 * a finding that is not on disk. The reverse window is accepted: a crash
 * between the log fsync and the state file write leaves the previous
 * cursor, the poller fetches those pages again and the dedup index drops
 * the records already in the log. Keeping the cursor in the poller (or in
 * Redis) instead would need a two-phase commit between two stores.
 *
 * Fencing tokens are recorded in memory as soon as a batch or GetJobState
 * presents a newer one, so a stale lock holder is rejected at once. The
 * token reaches disk with the next state file write.
 *
 * File `<log>.state.json`, written to a temp file, fsynced, renamed and
 * the folder fsynced (atomic-file.ts):
 *   { "formatVersion": 1, "logBytes": 1234,
 *     "jobs": { "qualys:default": { "cursor": "...",
 *               "fencingToken": "7", "writtenTotal": "42" } } }
 * `logBytes` is the log size that the writtenTotal counts cover; uint64
 * values are decimal strings.
 */
import { readFile } from "node:fs/promises";
import { VulnsubError } from "@vulnsub/shared";
import { writeFileAtomic } from "./atomic-file.ts";

export const STATE_FORMAT_VERSION = 1;

export interface JobRecord {
  cursor: string;
  fencingToken: bigint;
  writtenTotal: bigint;
}

export interface JobStateContent {
  logBytes: number;
  jobs: Map<string, JobRecord>;
}

export interface JobStateStore {
  /** Log bytes covered by the writtenTotal counts. */
  readonly logBytes: number;
  /** Returns the job's record; a job never seen has an empty one. */
  get(jobId: string): Readonly<JobRecord>;
  /**
   * Records `token` when it is newer than the job's newest. Returns the
   * newest token when `token` is older (stale), otherwise null.
   */
  registerToken(jobId: string, token: bigint): bigint | null;
  /** Applies a batch whose records are fsynced in the log. */
  applyCommitted(jobId: string, written: number, cursor: string): void;
  /** Sets the log size that the applied batches reach. */
  setLogBytes(logBytes: number): void;
  /** Writes the state file; resolves once a write that began after the
   * call is durable. Concurrent calls share writes. */
  commit(): Promise<void>;
}

/** Returns the state file path for a findings log path. */
export function statePathFor(logPath: string): string {
  return `${logPath}.state.json`;
}

/** Reads the state file; a missing file is an empty state. */
export async function loadJobState(path: string): Promise<JobStateContent> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { logBytes: 0, jobs: new Map() };
    }
    throw stateError(path, `cannot read: ${String(error)}`, error);
  }
  return parseJobState(path, text);
}

export function createJobStateStore(
  path: string,
  initial: JobStateContent,
): JobStateStore {
  const jobs = new Map(initial.jobs);
  let logBytes = initial.logBytes;
  // The initial content may come from a log scan and not be on disk yet,
  // so the first commit always writes the file.
  let changes = 1;
  let durableChanges = 0;
  let running = false;
  let queued: Deferred | null = null;

  const record = (jobId: string): JobRecord => {
    let entry = jobs.get(jobId);
    if (!entry) {
      entry = { cursor: "", fencingToken: 0n, writtenTotal: 0n };
      jobs.set(jobId, entry);
    }
    return entry;
  };

  const drain = async () => {
    running = true;
    while (queued) {
      const waiter = queued;
      queued = null;
      const version = changes;
      const text = serializeJobState(logBytes, jobs);
      try {
        await writeFileAtomic(path, Buffer.from(text));
        durableChanges = Math.max(durableChanges, version);
        waiter.resolve();
      } catch (error) {
        waiter.reject(
          new VulnsubError(
            "state_write_failed",
            `state file ${path}: write failed: ${String(error)}`,
            { cause: error, context: { path } },
          ),
        );
      }
    }
    running = false;
  };

  return {
    get logBytes() {
      return logBytes;
    },
    get: (jobId) =>
      jobs.get(jobId) ?? { cursor: "", fencingToken: 0n, writtenTotal: 0n },
    registerToken(jobId, token) {
      const entry = record(jobId);
      if (token < entry.fencingToken) return entry.fencingToken;
      if (token > entry.fencingToken) {
        entry.fencingToken = token;
        changes++;
      }
      return null;
    },
    applyCommitted(jobId, written, cursor) {
      const entry = record(jobId);
      if (written === 0 && (cursor === "" || cursor === entry.cursor)) return;
      entry.writtenTotal += BigInt(written);
      if (cursor !== "") entry.cursor = cursor;
      changes++;
    },
    setLogBytes(value) {
      if (value !== logBytes) changes++;
      logBytes = value;
    },
    commit() {
      if (!running && !queued && durableChanges === changes) {
        return Promise.resolve();
      }
      if (!queued) queued = createDeferred();
      const promise = queued.promise;
      if (!running) void drain();
      return promise;
    },
  };
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function createDeferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function serializeJobState(
  logBytes: number,
  jobs: Map<string, JobRecord>,
): string {
  const out: Record<string, unknown> = {};
  for (const [jobId, entry] of [...jobs].sort(([a], [b]) => a.localeCompare(b))) {
    out[jobId] = {
      cursor: entry.cursor,
      fencingToken: entry.fencingToken.toString(),
      writtenTotal: entry.writtenTotal.toString(),
    };
  }
  const content = { formatVersion: STATE_FORMAT_VERSION, logBytes, jobs: out };
  return `${JSON.stringify(content, null, 2)}\n`;
}

function parseJobState(path: string, text: string): JobStateContent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw stateError(path, `invalid JSON: ${String(error)}`, error);
  }
  if (!isObject(value)) throw stateError(path, "expected a JSON object");
  if (value.formatVersion !== STATE_FORMAT_VERSION) {
    throw stateError(
      path,
      `formatVersion ${JSON.stringify(value.formatVersion)}, ` +
        `expected ${STATE_FORMAT_VERSION}`,
    );
  }
  const logBytes = value.logBytes;
  if (typeof logBytes !== "number" || !Number.isSafeInteger(logBytes) || logBytes < 0) {
    throw stateError(path, `logBytes: expected a byte count, got ${JSON.stringify(logBytes)}`);
  }
  if (!isObject(value.jobs)) throw stateError(path, "jobs: expected an object");

  const jobs = new Map<string, JobRecord>();
  for (const [jobId, entry] of Object.entries(value.jobs)) {
    if (!isObject(entry) || typeof entry.cursor !== "string") {
      throw stateError(path, `jobs.${jobId}.cursor: expected a string`);
    }
    jobs.set(jobId, {
      cursor: entry.cursor,
      fencingToken: parseUint64(path, `jobs.${jobId}.fencingToken`, entry.fencingToken),
      writtenTotal: parseUint64(path, `jobs.${jobId}.writtenTotal`, entry.writtenTotal),
    });
  }
  return { logBytes, jobs };
}

function parseUint64(path: string, field: string, raw: unknown): bigint {
  if (typeof raw !== "string" || !/^\d{1,20}$/.test(raw)) {
    throw stateError(path, `${field}: expected a decimal string, got ${JSON.stringify(raw)}`);
  }
  return BigInt(raw);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stateError(path: string, detail: string, cause?: unknown) {
  return new VulnsubError("state_file_invalid", `state file ${path}: ${detail}`, {
    cause,
    context: { path },
  });
}
