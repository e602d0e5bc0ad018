import {
  create,
  toBinary,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { PageBatchSchema } from "./gen/vulnsub/v1/ingest_pb.ts";

type PageBatchInit = MessageInitShape<typeof PageBatchSchema>;
type RecordInit = NonNullable<PageBatchInit["records"]>[number];

const MAX_UINT64 = 2n ** 64n - 1n;

/**
 * Encodes a PageBatch to protobuf wire bytes, the same bytes that
 * protobuf-es `toBinary` writes, in one buffer sized up front: each
 * string is encoded once, straight into place. protobuf-es grows its
 * buffer by doubling, which copies a batch of MB several times.
 *
 * A batch with anything but plain strings and uint64 bigints in range
 * (or with unknown fields kept from a decode) goes through protobuf-es.
 */
export function encodePageBatch(batch: PageBatchInit): Buffer {
  if (!isPlain(batch)) {
    const bytes = toBinary(PageBatchSchema, create(PageBatchSchema, batch));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const records = batch.records ?? [];
  const job = batch.job;
  const jobSize = job
    ? stringSize(job.vendor ?? "") + stringSize(job.source ?? "")
    : 0;
  const recordSizes = records.map(
    (r) =>
      stringSize(r.findingKey ?? "") +
      stringSize(r.version ?? "") +
      stringSize(r.json ?? ""),
  );
  const fencingToken = batch.fencingToken ?? 0n;
  const seq = batch.seq ?? 0n;

  let total = job ? 1 + varintSize(jobSize) + jobSize : 0;
  if (fencingToken !== 0n) total += 1 + varintSize(fencingToken);
  if (seq !== 0n) total += 1 + varintSize(seq);
  for (const size of recordSizes) total += 1 + varintSize(size) + size;
  total += stringSize(batch.cursor ?? "");

  const writer = new FieldWriter(Buffer.allocUnsafe(total));
  if (job) {
    writer.lengthPrefix(1, jobSize);
    writer.string(1, job.vendor ?? "");
    writer.string(2, job.source ?? "");
  }
  if (fencingToken !== 0n) writer.uint64(2, fencingToken);
  if (seq !== 0n) writer.uint64(3, seq);
  records.forEach((record, i) => {
    writer.lengthPrefix(4, recordSizes[i] as number);
    writer.string(1, record.findingKey ?? "");
    writer.string(2, record.version ?? "");
    writer.string(3, record.json ?? "");
  });
  writer.string(5, batch.cursor ?? "");
  return writer.finish();
}

/** True when the fast path encodes the batch exactly as protobuf-es. */
function isPlain(batch: PageBatchInit): boolean {
  if ("$unknown" in batch) return false;
  const { job } = batch;
  if (job && ("$unknown" in job || !areStrings(job.vendor, job.source))) {
    return false;
  }
  if (!isUint64(batch.fencingToken) || !isUint64(batch.seq)) return false;
  if (!areStrings(batch.cursor)) return false;
  if (batch.records !== undefined && !Array.isArray(batch.records)) {
    return false;
  }
  return (batch.records ?? []).every(
    (r: RecordInit) =>
      !("$unknown" in r) && areStrings(r.findingKey, r.version, r.json),
  );
}

function areStrings(...values: unknown[]): boolean {
  return values.every((v) => v === undefined || typeof v === "string");
}

function isUint64(value: unknown): boolean {
  return (
    value === undefined ||
    (typeof value === "bigint" && value >= 0n && value <= MAX_UINT64)
  );
}

/** Bytes of a string field with its tag, 0 for "" (proto3 omits it). */
function stringSize(value: string): number {
  if (value === "") return 0;
  const bytes = Buffer.byteLength(value, "utf8");
  return 1 + varintSize(bytes) + bytes;
}

function varintSize(value: number | bigint): number {
  if (typeof value === "bigint") {
    let size = 1;
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) size++;
    return size;
  }
  let size = 1;
  let rest = Math.floor(value / 128);
  while (rest > 0) {
    size++;
    rest = Math.floor(rest / 128);
  }
  return size;
}

/** Writes fields of number 1-15 (one-byte tags) into a sized buffer. */
class FieldWriter {
  #buffer: Buffer;
  #pos = 0;

  constructor(buffer: Buffer) {
    this.#buffer = buffer;
  }

  lengthPrefix(field: number, length: number): void {
    this.#buffer[this.#pos++] = (field << 3) | 2;
    let rest = length;
    while (rest >= 0x80) {
      this.#buffer[this.#pos++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#buffer[this.#pos++] = rest;
  }

  string(field: number, value: string): void {
    if (value === "") return;
    this.lengthPrefix(field, Buffer.byteLength(value, "utf8"));
    this.#pos += this.#buffer.write(value, this.#pos, "utf8");
  }

  uint64(field: number, value: bigint): void {
    this.#buffer[this.#pos++] = field << 3;
    this.#varint(value);
  }

  finish(): Buffer {
    if (this.#pos !== this.#buffer.length) {
      throw new Error(
        `PageBatch encoding wrote ${this.#pos} of ${this.#buffer.length} bytes`,
      );
    }
    return this.#buffer;
  }

  #varint(value: bigint): void {
    let rest = value;
    while (rest >= 0x80n) {
      this.#buffer[this.#pos++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.#buffer[this.#pos++] = Number(rest);
  }
}
