import type { ingestProto } from "@vulnsub/shared";
import { jobId, parseJobRef, VulnsubError, type JobRef } from "@vulnsub/shared";
import {
  fingerprintOf,
  readFindingIdentity,
  type Fingerprint,
  type FindingIdentity,
} from "./finding-identity.ts";

/** A PageBatch that passed validation, with its log lines ready. */
export interface PreparedBatch {
  job: JobRef;
  jobId: string;
  seq: bigint;
  fencingToken: bigint;
  cursor: string;
  records: PreparedRecord[];
}

export interface PreparedRecord {
  fingerprint: Fingerprint;
  /** The record's JSON followed by "\n", as UTF-8. */
  line: Buffer;
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
  batch: ingestProto.PageBatch,
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

  const records = batch.records.map((record, index) => {
    const fail = (field: string, reason: string): never => {
      throw invalid(
        `${prefix}: records[${index}].${field}: ${reason}`,
        batch.seq,
        undefined,
        id,
      );
    };
    return prepareRecord(record, job, maxRecordBytes, fail);
  });
  return {
    job,
    jobId: id,
    seq: batch.seq,
    fencingToken: batch.fencingToken,
    cursor: batch.cursor,
    records,
  };
}

function prepareRecord(
  record: ingestProto.FindingRecord,
  job: JobRef,
  maxRecordBytes: number,
  fail: (field: string, reason: string) => never,
): PreparedRecord {
  if (record.findingKey === "") fail("finding_key", "empty");
  if (record.version === "") fail("version", "empty");
  const jsonBytes = Buffer.byteLength(record.json, "utf8");
  if (jsonBytes > maxRecordBytes) {
    fail("json", `${jsonBytes} bytes, over the limit of ${maxRecordBytes}`);
  }
  if (record.json.includes("\n")) {
    fail("json", "contains a newline; a log line must be one line");
  }

  let value: unknown;
  try {
    value = JSON.parse(record.json);
  } catch (error) {
    fail("json", `invalid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(value)) {
    fail("json", `expected one JSON object, got ${describe(value)}`);
  }

  const line = Buffer.allocUnsafe(jsonBytes + 1);
  line.write(record.json, 0, "utf8");
  line[jsonBytes] = 0x0a;
  const expected: FindingIdentity = {
    vendor: job.vendor,
    source: job.source,
    findingKey: record.findingKey,
    version: record.version,
  };
  const scanned = readFindingIdentity(line, 0, jsonBytes);
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
  return { fingerprint: fingerprintOf(expected), line };
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
