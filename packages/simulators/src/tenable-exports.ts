import type { Random } from "./common.ts";
import { randomUuid } from "./tenable-catalog.ts";
import {
  matchesFilter,
  type SimFinding,
  type TenableDataset,
} from "./tenable-dataset.ts";
import type { ExportRequest } from "./tenable-request.ts";

/**
 * The export jobs of the simulated Tenable container. A job's progress is
 * a function of the clock. It stays QUEUED for one processing delay. Then
 * its chunks become ready one per delay in a shuffled order, because
 * Tenable processes chunks in parallel and they finish out of order. Then
 * it is FINISHED. A job marked to fail turns ERROR about half way; chunks ready
 * before that stay downloadable and the rest are listed as failed.
 * Every chunk expires `chunkTtlMs` after it became ready, and the job
 * itself is forgotten `chunkTtlMs` after it ended.
 */

export type ExportStatusName =
  | "QUEUED"
  | "PROCESSING"
  | "FINISHED"
  | "CANCELLED"
  | "ERROR";

export interface ExportChunk {
  id: number;
  /** Snapshot taken when the job was created. */
  findings: readonly SimFinding[];
  readyMs: number;
}

export interface ExportJob {
  uuid: string;
  createdMs: number;
  request: ExportRequest;
  chunks: ExportChunk[];
  queuedUntilMs: number;
  /** When the job turns ERROR, or null for a job that succeeds. */
  errorAtMs: number | null;
  cancelledAtMs: number | null;
}

export type CreateOutcome =
  | { kind: "created"; job: ExportJob }
  | { kind: "duplicate"; activeJobId: string }
  | { kind: "busy"; retryAfterSeconds: number };

export type ChunkOutcome =
  | { kind: "ready"; job: ExportJob; chunk: ExportChunk }
  | { kind: "not_ready" }
  | { kind: "not_found"; reason: "unknown" | "expired" };

export interface ExportStoreOptions {
  dataset: TenableDataset;
  random: Random;
  clock: () => number;
  maxConcurrentExports: number;
  chunkTtlMs: number;
  processingDelayMs: number;
}

export type ExportStore = ReturnType<typeof createExportStore>;

export function createExportStore(options: ExportStoreOptions) {
  const jobs = new Map<string, ExportJob>();
  const counts = {
    created: 0,
    duplicates: 0,
    rejectedBusy: 0,
    cancelled: 0,
    markedToFail: 0,
    chunksExpired: 0,
  };

  function create(request: ExportRequest, fail: boolean): CreateOutcome {
    const now = options.clock();
    const active = live(now).filter((job) => isActive(job, now));
    const duplicate = active.find(
      (job) => job.request.duplicateKey === request.duplicateKey,
    );
    if (duplicate) {
      counts.duplicates++;
      return { kind: "duplicate", activeJobId: duplicate.uuid };
    }
    if (active.length >= options.maxConcurrentExports) {
      counts.rejectedBusy++;
      const nextEndMs = Math.min(...active.map(endOf));
      const retryAfterSeconds = Math.max(
        1,
        Math.ceil((nextEndMs - now) / 1000),
      );
      return { kind: "busy", retryAfterSeconds };
    }

    const job = buildJob(request, now, fail);
    jobs.set(job.uuid, job);
    counts.created++;
    if (fail) counts.markedToFail++;
    return { kind: "created", job };
  }

  function find(uuid: string): ExportJob | null {
    const now = options.clock();
    const job = jobs.get(uuid);
    if (!job) return null;
    if (now > endOf(job) + options.chunkTtlMs) {
      jobs.delete(uuid);
      return null;
    }
    return job;
  }

  function chunk(uuid: string, id: number): ChunkOutcome {
    const job = find(uuid);
    if (!job) return { kind: "not_found", reason: "unknown" };
    const found = job.chunks.find((item) => item.id === id);
    if (!found) return { kind: "not_found", reason: "unknown" };

    const now = options.clock();
    if (!isChunkReady(job, found, now)) return { kind: "not_ready" };
    if (now > found.readyMs + options.chunkTtlMs) {
      counts.chunksExpired++;
      return { kind: "not_found", reason: "expired" };
    }
    return { kind: "ready", job, chunk: found };
  }

  function cancel(uuid: string): ExportJob | null {
    const job = find(uuid);
    if (!job) return null;
    const now = options.clock();
    if (isActive(job, now)) {
      job.cancelledAtMs = now;
      counts.cancelled++;
    }
    return job;
  }

  function buildJob(request: ExportRequest, now: number, fail: boolean) {
    const groups: SimFinding[][] = [];
    const byAsset = options.dataset.byAsset;
    for (let start = 0; start < byAsset.length; start += request.numAssets) {
      const assets = byAsset.slice(start, start + request.numAssets);
      const findings = assets
        .flat()
        .filter((finding) => matchesFilter(finding, request.filter));
      groups.push(findings);
    }

    const delayMs = options.processingDelayMs;
    const queuedUntilMs = now + delayMs;
    const order = shuffle(options.random, groups.map((_, index) => index));
    const rank: number[] = [];
    order.forEach((index, position) => {
      rank[index] = position;
    });
    const chunks = groups.map((findings, index) => ({
      id: index + 1,
      findings,
      readyMs: queuedUntilMs + ((rank[index] ?? 0) + 1) * delayMs,
    }));
    const errorAtMs = fail
      ? queuedUntilMs + (Math.floor(chunks.length / 2) + 0.5) * delayMs
      : null;
    return {
      uuid: randomUuid(options.random),
      createdMs: now,
      request,
      chunks,
      queuedUntilMs,
      errorAtMs,
      cancelledAtMs: null,
    } satisfies ExportJob;
  }

  function live(now: number): ExportJob[] {
    for (const [uuid, job] of jobs) {
      if (now > endOf(job) + options.chunkTtlMs) jobs.delete(uuid);
    }
    return [...jobs.values()];
  }

  return {
    create,
    find,
    chunk,
    cancel,
    /** Jobs not yet forgotten, oldest first. */
    list: () => live(options.clock()),
    /** Jobs in QUEUED or PROCESSING now. */
    activeCount: () => {
      const now = options.clock();
      return live(now).filter((job) => isActive(job, now)).length;
    },
    counts: () => ({ ...counts }),
  };
}

/**
 * Builds the body of `GET /vulns/export/{uuid}/status` at `now`. The
 * available list is in the order the chunks became ready. Empty chunks are
 * counted in empty_chunks_count and never listed.
 */
export function statusBody(job: ExportJob, now: number) {
  const status = statusAt(job, now);
  const done = job.chunks.filter((chunk) => isChunkReady(job, chunk, now));
  const available = done
    .filter((chunk) => chunk.findings.length > 0)
    .sort((a, b) => a.readyMs - b.readyMs)
    .map((chunk) => chunk.id);
  const unfinished = job.chunks
    .filter((chunk) => !done.includes(chunk))
    .map((chunk) => chunk.id);
  const body: Record<string, unknown> = {
    uuid: job.uuid,
    status,
    chunks_available: available,
    chunks_failed: status === "ERROR" ? unfinished : [],
    chunks_cancelled: status === "CANCELLED" ? unfinished : [],
    total_chunks: job.chunks.length,
    chunks_available_count: available.length,
    empty_chunks_count: done.length - available.length,
    finished_chunks: done.length,
    filters: job.request.filtersEcho,
    num_assets_per_chunk: job.request.numAssets,
    created: job.createdMs,
  };
  if (status === "ERROR") {
    body.reason =
      `${unfinished.length} of ${job.chunks.length} chunks failed to ` +
      "process; the export did not complete";
  }
  return body;
}

/** Returns the job's status at `now`. */
export function statusAt(job: ExportJob, now: number): ExportStatusName {
  if (job.cancelledAtMs !== null) return "CANCELLED";
  if (job.errorAtMs !== null && now >= job.errorAtMs) return "ERROR";
  if (now < job.queuedUntilMs) return "QUEUED";
  if (job.errorAtMs === null && now >= endOf(job)) return "FINISHED";
  return "PROCESSING";
}

/** Returns true when chunk processing finished by `now` and succeeded. */
export function isChunkReady(
  job: ExportJob,
  chunk: ExportChunk,
  now: number,
): boolean {
  return chunk.readyMs <= Math.min(now, stopOf(job));
}

/** Returns when processing stopped: cancel, error, or never (Infinity). */
export function stopOf(job: ExportJob): number {
  return job.cancelledAtMs ?? job.errorAtMs ?? Number.POSITIVE_INFINITY;
}

function isActive(job: ExportJob, now: number): boolean {
  const status = statusAt(job, now);
  return status === "QUEUED" || status === "PROCESSING";
}

// When the job reached a final status (or will reach it).
function endOf(job: ExportJob): number {
  if (job.cancelledAtMs !== null) return job.cancelledAtMs;
  if (job.errorAtMs !== null) return job.errorAtMs;
  const last = Math.max(job.queuedUntilMs, ...job.chunks.map((c) => c.readyMs));
  return last;
}

function shuffle(random: Random, items: number[]): number[] {
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [result[i], result[j]] = [result[j] as number, result[i] as number];
  }
  return result;
}
