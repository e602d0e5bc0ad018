// Shared fixtures of the flusher tests: temp folders, a flusher child
// process, in-process flushers, finding records and stream drivers.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { ServiceError } from "@grpc/grpc-js";
import {
  createIngestClient,
  createLogger,
  type IngestClient,
  type ingestProto,
  type PageBatchInit,
} from "@vulnsub/shared";
import { loadFlusherConfig, type FlusherConfig } from "../src/config.ts";
import { startFlusher, type Flusher, type FlusherOptions } from "../src/flusher.ts";

export const MAIN_PATH = join(import.meta.dir, "..", "src", "main.ts");
export const JOB = { vendor: "qualys", source: "default" } as const;

export async function createTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "vulnsub-flusher-"));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** A finding record whose JSON is a valid envelope of about `bytes`. */
export function makeRecord(
  findingKey: string,
  version = "v1",
  options: { job?: { vendor: string; source: string }; bytes?: number } = {},
): ingestProto.FindingRecord {
  const job = options.job ?? JOB;
  const envelope = {
    schemaVersion: 1,
    vendor: job.vendor,
    source: job.source,
    findingKey,
    version,
    raw: { output: "x".repeat(Math.max(0, (options.bytes ?? 200) - 120)) },
  };
  return { findingKey, version, json: JSON.stringify(envelope) } as ingestProto.FindingRecord;
}

export function makeBatch(
  seq: number,
  records: ingestProto.FindingRecord[],
  options: { token?: bigint; cursor?: string; job?: { vendor: string; source: string } } = {},
): PageBatchInit {
  return {
    job: options.job ?? JOB,
    fencingToken: options.token ?? 1n,
    seq: BigInt(seq),
    records,
    cursor: options.cursor ?? "",
  };
}

export interface StreamOutcome {
  acks: ingestProto.Ack[];
  error: ServiceError | null;
}

/**
 * Opens a Stream, writes the batches, half-closes, and collects the acks
 * until the call ends with OK or an error.
 */
export function sendBatches(
  client: IngestClient,
  batches: PageBatchInit[],
): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const acks: ingestProto.Ack[] = [];
    const call = client.stream();
    call.on("data", (ack: ingestProto.Ack) => acks.push(ack));
    call.on("error", (error: ServiceError) => resolve({ acks, error }));
    call.on("end", () => resolve({ acks, error: null }));
    for (const batch of batches) call.write(batch);
    call.end();
  });
}

/** Config for an in-process flusher on port 0 with metrics off. */
export function testConfig(
  dataDir: string,
  env: Record<string, string> = {},
): FlusherConfig {
  return loadFlusherConfig({
    env: {
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: dataDir,
      METRICS_LISTEN: "off",
      ...env,
    },
  }).config;
}

/** A logger that keeps its JSON lines in memory. */
export function createMemoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split("\n")) {
        if (line.trim()) lines.push(JSON.parse(line));
      }
      callback();
    },
  });
  const logger = createLogger({ service: "flusher-test", destination, level: "debug" });
  return { logger, lines, events: () => lines.map((line) => line.event) };
}

export async function startTestFlusher(
  dataDir: string,
  options: Partial<FlusherOptions> & { env?: Record<string, string> } = {},
) {
  const memory = createMemoryLogger();
  const flusher: Flusher = await startFlusher({
    config: testConfig(dataDir, options.env),
    logger: memory.logger,
    ...options,
  });
  const client = createIngestClient(flusher.address);
  return { flusher, client, ...memory };
}
