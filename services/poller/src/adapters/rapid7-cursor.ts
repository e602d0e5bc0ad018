import { VulnsubError } from "@vulnsub/shared";

/**
 * The durable cursor of a Rapid7 job, stored as JSON text by the flusher.
 *
 * Between cycles it holds only the watermark. During a cycle it also holds
 * the cycle's parameters and the vendor cursor of the next asset page, so
 * a restarted poller sends the same search again from that page. Whether
 * Rapid7 accepts a vendor cursor in a later run is not documented; the
 * adapter restarts the cycle when a resumed cursor is rejected with 400.
 */
export interface Rapid7Cursor {
  formatVersion: 1;
  /**
   * Start of the last completed cycle (ISO 8601): the next incremental
   * cycle compares against it, less the lookback. Null before the first
   * cycle completes.
   */
  watermark: string | null;
  /** The cycle in progress, or null between cycles. */
  cycle: Rapid7CycleCursor | null;
}

export interface Rapid7CycleCursor {
  /** backfill: includeSame and `last_scan_end > since`; incremental: diff. */
  mode: "backfill" | "incremental";
  /** Cycle start (ISO 8601): currentTime of the search, next watermark. */
  startedAt: string;
  /** backfill: lower bound of last_scan_end; incremental: comparisonTime. */
  since: string;
  /** Vendor cursor of the next asset page. */
  apiCursor: string;
  /** Number of the next page within the cycle, from 1. */
  page: number;
}

export const EMPTY_RAPID7_CURSOR: Rapid7Cursor = Object.freeze({
  formatVersion: 1,
  watermark: null,
  cycle: null,
});

/** Parses the job's cursor; null (a first run) gives the empty cursor. */
export function parseRapid7Cursor(text: string | null): Rapid7Cursor {
  if (text === null || text === "") return EMPTY_RAPID7_CURSOR;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidCursor(text, "not JSON");
  }
  if (!isRecord(value) || value.formatVersion !== 1) {
    throw invalidCursor(text, "expected an object with formatVersion 1");
  }
  const watermark = value.watermark ?? null;
  if (watermark !== null && !isTime(watermark)) {
    throw invalidCursor(text, "watermark: expected an ISO 8601 time or null");
  }
  const cycle = value.cycle ?? null;
  if (cycle !== null && !isCycle(cycle)) {
    throw invalidCursor(
      text,
      "cycle: expected mode, startedAt, since, apiCursor and page",
    );
  }
  return { formatVersion: 1, watermark, cycle };
}

export function formatRapid7Cursor(cursor: Rapid7Cursor): string {
  return JSON.stringify(cursor);
}

function isCycle(value: unknown): value is Rapid7CycleCursor {
  if (!isRecord(value)) return false;
  return (
    (value.mode === "backfill" || value.mode === "incremental") &&
    isTime(value.startedAt) &&
    isTime(value.since) &&
    typeof value.apiCursor === "string" &&
    value.apiCursor !== "" &&
    Number.isInteger(value.page) &&
    (value.page as number) >= 1
  );
}

function isTime(value: unknown): value is string {
  return typeof value === "string" && Number.isFinite(Date.parse(value));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// The cursor was written by this adapter and acked by the flusher, so a bad
// one means a changed format or a damaged state file: a human must look.
function invalidCursor(text: string, problem: string): VulnsubError {
  const excerpt = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return new VulnsubError(
    "state_file_invalid",
    `rapid7 cursor ${excerpt}: ${problem}; reset the job's cursor to run a ` +
      "new backfill",
    { context: { vendor: "rapid7" } },
  );
}
