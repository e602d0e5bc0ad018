/**
 * Decodes a vulnsub.v1.PageBatch from protobuf wire bytes, keeping each
 * record's `json` as bytes: a view into the received message, not a
 * string. The validator checks those bytes and copies them into the log
 * lines once, so a finding is neither decoded to UTF-16 and encoded back
 * nor copied per record.
 *
 * Proto3 wire rules: fields come in any order, the last value of a
 * scalar wins, a repeated `job` merges, unknown fields (and known ones
 * with another wire type) are skipped, uint64 values wrap to 64 bits.
 * Strings other than `json` decode as UTF-8 with invalid bytes replaced,
 * as protobuf-es does. The validator checks that `json` is valid UTF-8.
 * Throws on truncated input or a group wire type, and grpc-js then fails
 * the call with INTERNAL.
 */

/** A PageBatch as the flusher receives it. */
export interface IncomingBatch {
  job: { vendor: string; source: string } | undefined;
  fencingToken: bigint;
  seq: bigint;
  records: IncomingRecord[];
  cursor: string;
}

export interface IncomingRecord {
  findingKey: string;
  version: string;
  /** The record's JSON as received, UTF-8 not yet checked. */
  json: Buffer;
}

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;
const EMPTY = Buffer.alloc(0);

/** Decodes the wire bytes of one PageBatch message. */
export function decodePageBatch(bytes: Buffer): IncomingBatch {
  const reader = new WireReader(bytes, 0, bytes.length);
  const batch: IncomingBatch = {
    job: undefined,
    fencingToken: 0n,
    seq: 0n,
    records: [],
    cursor: "",
  };
  while (reader.more()) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === BYTES) {
      batch.job ??= { vendor: "", source: "" };
      decodeJob(reader.sub(), batch.job);
    } else if (field === 2 && wireType === VARINT) {
      batch.fencingToken = reader.uint64();
    } else if (field === 3 && wireType === VARINT) {
      batch.seq = reader.uint64();
    } else if (field === 4 && wireType === BYTES) {
      batch.records.push(decodeRecord(reader.sub()));
    } else if (field === 5 && wireType === BYTES) {
      batch.cursor = reader.string();
    } else {
      reader.skip(field, wireType);
    }
  }
  return batch;
}

function decodeJob(
  reader: WireReader,
  job: { vendor: string; source: string },
): void {
  while (reader.more()) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === BYTES) job.vendor = reader.string();
    else if (field === 2 && wireType === BYTES) job.source = reader.string();
    else reader.skip(field, wireType);
  }
}

function decodeRecord(reader: WireReader): IncomingRecord {
  const record: IncomingRecord = { findingKey: "", version: "", json: EMPTY };
  while (reader.more()) {
    const [field, wireType] = reader.tag();
    if (wireType !== BYTES || field > 3) reader.skip(field, wireType);
    else if (field === 1) record.findingKey = reader.string();
    else if (field === 2) record.version = reader.string();
    else record.json = reader.bytes();
  }
  return record;
}

/** Reads wire values from buffer[pos, end). */
class WireReader {
  #buffer: Buffer;
  #pos: number;
  #end: number;

  constructor(buffer: Buffer, pos: number, end: number) {
    this.#buffer = buffer;
    this.#pos = pos;
    this.#end = end;
  }

  more(): boolean {
    return this.#pos < this.#end;
  }

  /** Returns [field number, wire type]. */
  tag(): [number, number] {
    const tag = this.#varint();
    const field = Math.floor(tag / 8);
    if (field === 0) throw this.#error("field number 0");
    return [field, tag % 8];
  }

  uint64(): bigint {
    let value = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = this.#byte();
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asUintN(64, value);
      shift += 7n;
    }
    throw this.#error("varint longer than 10 bytes");
  }

  /** A view of the next length-delimited value; no copy. */
  bytes(): Buffer {
    const length = this.#varint();
    const start = this.#pos;
    if (length > this.#end - start) throw this.#error("length past the end");
    this.#pos = start + length;
    return this.#buffer.subarray(start, start + length);
  }

  string(): string {
    const view = this.bytes();
    return view.length === 0 ? "" : view.toString("utf8");
  }

  /** A reader of the next length-delimited value (an embedded message). */
  sub(): WireReader {
    const view = this.bytes();
    return new WireReader(view, 0, view.length);
  }

  skip(field: number, wireType: number): void {
    if (wireType === VARINT) this.#varint();
    else if (wireType === FIXED64) this.#advance(8);
    else if (wireType === BYTES) this.bytes();
    else if (wireType === FIXED32) this.#advance(4);
    else throw this.#error(`field ${field}: unsupported wire type ${wireType}`);
  }

  /** A varint as a number; lengths and tags fit in 2^53. */
  #varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.#byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw this.#error("varint too large for a tag or a length");
  }

  #byte(): number {
    if (this.#pos >= this.#end) throw this.#error("message ends in a value");
    return this.#buffer[this.#pos++] as number;
  }

  #advance(count: number): void {
    if (count > this.#end - this.#pos) throw this.#error("value past the end");
    this.#pos += count;
  }

  #error(reason: string): Error {
    return new Error(`PageBatch at byte ${this.#pos}: ${reason}`);
  }
}
