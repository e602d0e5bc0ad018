/**
 * Dedup snapshot: the committed dedup index saved next to the findings
 * log, so a restart scans only the log past the offset it covers.
 *
 * Layout (little-endian), file `<log>.dedup`:
 *   0  magic "VSDEDUP\0"            8 bytes
 *   8  formatVersion                u32 (1)
 *  12  reserved                     u32 (0)
 *  16  logOffset                    u64: log bytes the keys cover
 *  24  tailCheckBytes               u32: length of the check window
 *  28  reserved                     u32 (0)
 *  32  tailHash                     u64: xxHash64 of the log bytes
 *                                   [logOffset - tailCheckBytes, logOffset)
 *  40  keyCount                     u64
 *  48  capacity                     u64: slots in the table
 *  56  slots                        capacity x 8 bytes (dedup-index.ts)
 *  end checksum                     u64: xxHash64 of every byte before it
 *
 * A snapshot is used only when its checksum and version are right, its
 * offset is at most the log size and ends a line, and the check window
 * hashes to the same value in the log. Otherwise the caller rebuilds the
 * index from the whole log, so a stale or foreign snapshot costs time,
 * never a wrong answer. It is written to a temp file, fsynced, renamed
 * over the old one and the folder fsynced: a crash leaves the old or the
 * new snapshot, never a mix.
 */
import { open, readFile } from "node:fs/promises";
import { endianness } from "node:os";
import {
  createDedupIndexFromSlots,
  type DedupIndex,
} from "./dedup-index.ts";
import { writeFileAtomic } from "./atomic-file.ts";

export const SNAPSHOT_FORMAT_VERSION = 1;
const MAGIC = Buffer.from("VSDEDUP\0", "latin1");
const HEADER_BYTES = 56;
const CHECKSUM_BYTES = 8;
const TAIL_CHECK_MAX_BYTES = 64 * 1024;

export interface DedupSnapshot {
  index: DedupIndex;
  logOffset: number;
}

export type SnapshotLoadResult =
  | { ok: true; snapshot: DedupSnapshot }
  | { ok: false; reason: string };

/** Returns the snapshot path for a findings log path. */
export function snapshotPathFor(logPath: string): string {
  return `${logPath}.dedup`;
}

/**
 * Builds the snapshot bytes of `index`, which must cover exactly the log
 * bytes [0, logOffset) of the file at logPath.
 */
export async function encodeDedupSnapshot(
  index: DedupIndex,
  logPath: string,
  logOffset: number,
): Promise<Buffer> {
  const slotBytes = index.byteLength;
  const bytes = Buffer.alloc(HEADER_BYTES + slotBytes + CHECKSUM_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);

  // Copy the table before the first await: the index keeps changing while
  // the log window is read.
  const slots = index.slots();
  bytes.set(
    new Uint8Array(slots.buffer, slots.byteOffset, slots.byteLength),
    HEADER_BYTES,
  );
  MAGIC.copy(bytes, 0);
  view.setUint32(8, SNAPSHOT_FORMAT_VERSION, true);
  view.setBigUint64(16, BigInt(logOffset), true);
  view.setBigUint64(40, BigInt(index.size), true);
  view.setBigUint64(48, BigInt(index.capacity), true);

  const tail = await hashLogWindow(logPath, logOffset);
  view.setUint32(24, tail.length, true);
  view.setBigUint64(32, tail.hash, true);
  const checksumAt = HEADER_BYTES + slotBytes;
  const checksum = Bun.hash.xxHash64(bytes.subarray(0, checksumAt));
  view.setBigUint64(checksumAt, checksum, true);
  return bytes;
}

/** Writes snapshot bytes atomically (temp file, fsync, rename, dir fsync). */
export async function writeDedupSnapshot(
  path: string,
  bytes: Buffer,
): Promise<void> {
  await writeFileAtomic(path, bytes);
}

/**
 * Loads and verifies the snapshot at `path` against the log. Never
 * throws for a bad snapshot: it returns the reason to fall back.
 */
export async function loadDedupSnapshot(
  path: string,
  logPath: string,
  logSizeBytes: number,
): Promise<SnapshotLoadResult> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, reason: "no snapshot file" };
    return { ok: false, reason: `cannot read: ${String(error)}` };
  }
  const header = parseHeader(bytes);
  if (typeof header === "string") return { ok: false, reason: header };

  if (header.logOffset > logSizeBytes) {
    return {
      ok: false,
      reason:
        `snapshot covers ${header.logOffset} bytes but the log has ` +
        `${logSizeBytes}`,
    };
  }
  const tail = await hashLogWindow(logPath, header.logOffset);
  if (tail.length !== header.tailCheckBytes || tail.hash !== header.tailHash) {
    return {
      ok: false,
      reason: `log bytes before offset ${header.logOffset} differ from the snapshot`,
    };
  }

  const slots = new Uint32Array(header.capacity * 2);
  new Uint8Array(slots.buffer).set(
    bytes.subarray(HEADER_BYTES, HEADER_BYTES + slots.byteLength),
  );
  try {
    const index = createDedupIndexFromSlots(slots, header.keyCount);
    return { ok: true, snapshot: { index, logOffset: header.logOffset } };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

interface SnapshotHeader {
  logOffset: number;
  tailCheckBytes: number;
  tailHash: bigint;
  keyCount: number;
  capacity: number;
}

function parseHeader(bytes: Buffer): SnapshotHeader | string {
  // The slots are copied in host byte order; a big-endian host would read
  // them wrong, so it rebuilds from the log instead.
  if (endianness() !== "LE") return "host is big-endian";
  if (bytes.length < HEADER_BYTES + CHECKSUM_BYTES) return "file too short";
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) return "bad magic";

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const version = view.getUint32(8, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    return `formatVersion ${version}, expected ${SNAPSHOT_FORMAT_VERSION}`;
  }
  const capacity = Number(view.getBigUint64(48, true));
  const expectedLength = HEADER_BYTES + capacity * 8 + CHECKSUM_BYTES;
  if (bytes.length !== expectedLength) {
    return `file is ${bytes.length} bytes, header implies ${expectedLength}`;
  }
  const checksumAt = expectedLength - CHECKSUM_BYTES;
  const checksum = Bun.hash.xxHash64(bytes.subarray(0, checksumAt));
  if (checksum !== view.getBigUint64(checksumAt, true)) {
    return "checksum mismatch";
  }
  return {
    logOffset: Number(view.getBigUint64(16, true)),
    tailCheckBytes: view.getUint32(24, true),
    tailHash: view.getBigUint64(32, true),
    keyCount: Number(view.getBigUint64(40, true)),
    capacity,
  };
}

/** Hashes the log bytes of the check window that ends at `offset`. */
async function hashLogWindow(
  logPath: string,
  offset: number,
): Promise<{ length: number; hash: bigint }> {
  const length = Math.min(offset, TAIL_CHECK_MAX_BYTES);
  if (length === 0) return { length: 0, hash: 0n };

  const handle = await open(logPath, "r");
  try {
    const window = Buffer.alloc(length);
    const { bytesRead } = await handle.read(window, 0, length, offset - length);
    // A window that does not end with a newline cannot end a line, so it
    // never matches a snapshot, which always covers whole lines.
    if (bytesRead !== length || window[length - 1] !== 0x0a) {
      return { length: -1, hash: 0n };
    }
    return { length, hash: Bun.hash.xxHash64(window) };
  } finally {
    await handle.close();
  }
}
