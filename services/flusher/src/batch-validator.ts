import { isUtf8 } from "node:buffer";
import { jobId, parseJobRef, VulnsubError, type JobRef } from "@vulnsub/shared";
import {
  fingerprintOf,
  readFindingIdentity,
  type Fingerprint,
  type FindingIdentity,
} from "./finding-identity.ts";
import type { IncomingBatch, IncomingRecord } from "./page-batch-decoder.ts";

/** A PageBatch that passed validation, with its log lines ready. */
export interface PreparedBatch {
  job: JobRef;
  jobId: string;
  seq: bigint;
  fencingToken: bigint;
  cursor: string;
  records: PreparedRecord[];
  /** Every record's JSON followed by "\n", as UTF-8, in record order. */
  lines: Buffer;
}

export interface PreparedRecord {
  fingerprint: Fingerprint;
  /** The record's line is lines[startByte, endByte), "\n" included. */
  startByte: number;
  endByte: number;
}

/**
 * Validates a PageBatch and prepares its lines. Throws batch_invalid (or
 * job_invalid) naming the field, the job and the seq; a batch either
 * passes whole or is rejected whole.
 *
 * Besides the proto rules, each record's JSON must carry the same vendor,
 * source, findingKey and version as the batch and the record, because the
 * dedup index is rebuilt from those fields of the log lines.
 */
export function prepareBatch(
  batch: IncomingBatch,
  expectedSeq: bigint,
  maxRecordBytes: number,
): PreparedBatch {
  if (!batch.job) {
    throw invalid(`batch seq ${batch.seq}: job: missing`, batch.seq);
  }
  let job: JobRef;
  try {
    job = parseJobRef(batch.job.vendor, batch.job.source);
  } catch (error) {
    const reason = (error as Error).message;
    throw invalid(`batch seq ${batch.seq}: job: ${reason}`, batch.seq, error);
  }
  const id = jobId(job);
  const prefix = `batch seq ${batch.seq} of ${id}`;
  if (batch.seq !== expectedSeq) {
    throw invalid(
      `${prefix}: seq: expected ${expectedSeq} (batches of a stream are ` +
        "numbered from 1 without gaps)",
      batch.seq,
      undefined,
      id,
    );
  }

  // One buffer holds every line, so a batch costs one allocation and the
  // journal writes it without copying it again.
  const total = batch.records.reduce((sum, r) => sum + r.json.length + 1, 0);
  const lines = Buffer.allocUnsafe(total);
  let offset = 0;
  const records = batch.records.map((record, index) => {
    const fail = (field: string, reason: string): never => {
      throw invalid(
        `${prefix}: records[${index}].${field}: ${reason}`,
        batch.seq,
        undefined,
        id,
      );
    };
    const prepared = prepareRecord(record, job, maxRecordBytes, fail, {
      lines,
      startByte: offset,
    });
    offset = prepared.endByte;
    return prepared;
  });
  return {
    job,
    jobId: id,
    seq: batch.seq,
    fencingToken: batch.fencingToken,
    cursor: batch.cursor,
    records,
    lines,
  };
}

/** Where prepareRecord writes the record's line. */
interface LineSlot {
  lines: Buffer;
  startByte: number;
}

function prepareRecord(
  record: IncomingRecord,
  job: JobRef,
  maxRecordBytes: number,
  fail: (field: string, reason: string) => never,
  slot: LineSlot,
): PreparedRecord {
  if (record.findingKey === "") fail("finding_key", "empty");
  if (record.version === "") fail("version", "empty");
  const { lines, startByte } = slot;
  const jsonBytes = record.json.length;
  if (jsonBytes > maxRecordBytes) {
    fail("json", `${jsonBytes} bytes, over the limit of ${maxRecordBytes}`);
  }
  if (record.json.includes(0x0a)) {
    fail("json", "contains a newline; a log line must be one line");
  }
  if (!isUtf8(record.json)) fail("json", "not valid UTF-8");

  let value: unknown;
  try {
    value = JSON.parse(record.json.toString("utf8"));
  } catch (error) {
    fail("json", `invalid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(value)) {
    fail("json", `expected one JSON object, got ${describe(value)}`);
  }

  const endByte = startByte + jsonBytes + 1;
  record.json.copy(lines, startByte);
  lines[endByte - 1] = 0x0a;
  const expected: FindingIdentity = {
    vendor: job.vendor,
    source: job.source,
    findingKey: record.findingKey,
    version: record.version,
  };
  const scanned = readFindingIdentity(lines, startByte, endByte - 1);
  for (const field of ["vendor", "source", "findingKey", "version"] as const) {
    // Both the parsed value (last occurrence) and the scanned one (first
    // occurrence) must match, so a duplicated key cannot change identity.
    const parsed = (value as Record<string, unknown>)[field];
    if (parsed !== expected[field] || scanned?.[field] !== expected[field]) {
      fail(
        `json.${field}`,
        `${JSON.stringify(parsed)} does not match the batch's ` +
          `${JSON.stringify(expected[field])}`,
      );
    }
  }
  return { fingerprint: fingerprintOf(expected), startByte, endByte };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype
  );
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  return `a ${typeof value}`;
}

function invalid(
  message: string,
  seq: bigint,
  cause?: unknown,
  job?: string,
): VulnsubError {
  return new VulnsubError("batch_invalid", message, {
    cause,
    context: { seq: seq.toString(), ...(job ? { job } : {}) },
  });
}
