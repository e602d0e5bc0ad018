import { open, type FileHandle } from "node:fs/promises";
import { VulnsubError, type Logger } from "@vulnsub/shared";
import {
  readFindingIdentity,
  type FindingIdentity,
} from "./finding-identity.ts";

/**
 * Start-up side of the journal (journal-writer.ts has the design note):
 * cuts a torn tail off the findings log and scans lines for the dedup
 * index and the job counts.
 */
export interface TailRepair {
  /** Log size after the repair. */
  sizeBytes: number;
  /** Bytes cut off the end (0 when the log was clean). */
  cutBytes: number;
}

const NEWLINE = 0x0a;
const BACKWARD_CHUNK_BYTES = 1024 * 1024;
const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Cuts the incomplete or invalid last lines of the log at `path`, creating
 * the file when missing. A last line without a newline, or one that is not
 * a JSON object with the identity fields, is the trace of a write that was
 * never fsynced (the writer validates every line first), so it was never
 * acked. Throws journal_corrupt when a cut would go below `durableBytes`,
 * the size that the state file records as fsynced.
 */
export async function repairJournalTail(
  path: string,
  durableBytes: number,
  logger: Logger,
): Promise<TailRepair> {
  const handle = await open(path, "a+");
  try {
    const originalBytes = (await handle.stat()).size;
    let sizeBytes = originalBytes;
    let linesCut = 0;
    let reason = "";

    for (;;) {
      const lastNewline = await findNewlineBefore(handle, sizeBytes);
      if (lastNewline + 1 < sizeBytes) {
        sizeBytes = lastNewline + 1;
        reason ||= "last line has no trailing newline";
        linesCut++;
        continue;
      }
      if (sizeBytes === 0) break;
      const lineStart = (await findNewlineBefore(handle, sizeBytes - 1)) + 1;
      if (await isValidLine(handle, lineStart, sizeBytes - 1)) break;
      sizeBytes = lineStart;
      reason ||= "last line is not a valid finding JSON object";
      linesCut++;
    }

    if (sizeBytes === originalBytes) return { sizeBytes, cutBytes: 0 };
    if (sizeBytes < durableBytes) {
      throw new VulnsubError(
        "journal_corrupt",
        `findings log ${path}: invalid data at byte ${sizeBytes}, before ` +
          `the ${durableBytes} bytes the state file records as fsynced; ` +
          "inspect the file and restore it from a backup",
        { context: { path, offset: sizeBytes, durableBytes } },
      );
    }
    await handle.truncate(sizeBytes);
    await handle.sync();
    logger.warn(
      {
        event: "journal.tail_truncated",
        path,
        originalBytes,
        sizeBytes,
        cutBytes: originalBytes - sizeBytes,
        linesCut,
        reason,
      },
      "cut an incomplete tail off the findings log",
    );
    return { sizeBytes, cutBytes: originalBytes - sizeBytes };
  } finally {
    await handle.close();
  }
}

/**
 * Calls `onLine` for every line in [fromOffset, toOffset) with its identity
 * and start offset. `fromOffset` must start a line. Throws journal_corrupt
 * naming the offset of a line without the identity fields.
 */
export async function scanJournal(
  path: string,
  fromOffset: number,
  toOffset: number,
  onLine: (identity: FindingIdentity, offset: number) => void,
): Promise<number> {
  if (fromOffset >= toOffset) return 0;
  const handle = await open(path, "r");
  let buffer: Buffer = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  let filled = 0;
  let bufferOffset = fromOffset;
  let lines = 0;
  try {
    while (bufferOffset + filled < toOffset) {
      if (filled === buffer.length) buffer = grow(buffer);
      const want = Math.min(buffer.length - filled, toOffset - bufferOffset - filled);
      const { bytesRead } = await handle.read(buffer, filled, want, bufferOffset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;

      let start = 0;
      let newline = buffer.indexOf(NEWLINE, start);
      while (newline !== -1 && newline < filled) {
        const identity = readFindingIdentity(buffer, start, newline);
        if (!identity) throw corruptLine(path, bufferOffset + start);
        onLine(identity, bufferOffset + start);
        lines++;
        start = newline + 1;
        newline = buffer.indexOf(NEWLINE, start);
      }
      buffer.copy(buffer, 0, start, filled);
      filled -= start;
      bufferOffset += start;
    }
  } finally {
    await handle.close();
  }
  if (filled > 0) throw corruptLine(path, bufferOffset);
  return lines;
}

function corruptLine(path: string, offset: number) {
  return new VulnsubError(
    "journal_corrupt",
    `findings log ${path}: line at byte ${offset} is not a finding JSON ` +
      "object with vendor, source, findingKey and version strings; " +
      "inspect the file and restore it from a backup",
    { context: { path, offset } },
  );
}

function grow(buffer: Buffer): Buffer {
  const bigger = Buffer.allocUnsafe(buffer.length * 2);
  buffer.copy(bigger);
  return bigger;
}

/** Returns the offset of the last newline before `end`, or -1. */
async function findNewlineBefore(handle: FileHandle, end: number) {
  const chunk = Buffer.allocUnsafe(BACKWARD_CHUNK_BYTES);
  let chunkEnd = end;
  while (chunkEnd > 0) {
    const chunkStart = Math.max(0, chunkEnd - chunk.length);
    const length = chunkEnd - chunkStart;
    await handle.read(chunk, 0, length, chunkStart);
    const index = chunk.subarray(0, length).lastIndexOf(NEWLINE);
    if (index !== -1) return chunkStart + index;
    chunkEnd = chunkStart;
  }
  return -1;
}

async function isValidLine(handle: FileHandle, start: number, end: number) {
  const bytes = Buffer.allocUnsafe(end - start);
  await handle.read(bytes, 0, bytes.length, start);
  try {
    const value: unknown = JSON.parse(bytes.toString("utf8"));
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return false;
    }
  } catch {
    return false;
  }
  return readFindingIdentity(bytes) !== null;
}
