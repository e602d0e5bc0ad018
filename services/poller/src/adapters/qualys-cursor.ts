import { VulnsubError } from "@vulnsub/shared";

/**
 * Durable position of a Qualys job, stored as JSON by the flusher.
 * - "paging": inside a cycle. `nextUrl` is the page to fetch next, the
 *   WARNING 1980 URL of the last committed page. `since` is the cycle's
 *   detection_processed_after value, and `cycleStartedAt` is when the cycle
 *   began.
 * - "done": between cycles; the next cycle asks for detections processed
 *   after `watermark` minus the lookback.
 */
export type QualysCursor =
  | {
      formatVersion: 1;
      phase: "paging";
      cycleStartedAt: string;
      since: string;
      nextUrl: string;
      /** Number of the page `nextUrl` fetches, counted from 1 per cycle. */
      page: number;
    }
  | { formatVersion: 1; phase: "done"; watermark: string };

export function formatQualysCursor(cursor: QualysCursor): string {
  return JSON.stringify(cursor);
}

/** Parses a stored cursor; throws state_file_invalid naming the problem. */
export function parseQualysCursor(text: string): QualysCursor {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(text, "not JSON");
  }
  if (typeof value !== "object" || value === null)
    throw invalid(text, "not an object");
  const record = value as Record<string, unknown>;
  if (record.formatVersion !== 1) throw invalid(text, "formatVersion is not 1");

  if (record.phase === "done") {
    return {
      formatVersion: 1,
      phase: "done",
      watermark: isoField(record, "watermark", text),
    };
  }
  if (record.phase !== "paging")
    throw invalid(text, "phase is not paging or done");
  const page = record.page;
  if (typeof page !== "number" || !Number.isInteger(page) || page < 1) {
    throw invalid(text, "page is not a positive integer");
  }
  if (typeof record.nextUrl !== "string" || record.nextUrl === "") {
    throw invalid(text, "nextUrl is missing");
  }
  return {
    formatVersion: 1,
    phase: "paging",
    cycleStartedAt: isoField(record, "cycleStartedAt", text),
    since: isoField(record, "since", text),
    nextUrl: record.nextUrl,
    page,
  };
}

/**
 * Formats a time for detection_processed_after: ISO 8601 UTC cut to whole
 * seconds (YYYY-MM-DDTHH:MM:SSZ), the form Qualys takes.
 */
export function formatQualysTime(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
    .toISOString()
    .replace(".000Z", "Z");
}

function isoField(
  record: Record<string, unknown>,
  name: string,
  text: string,
): string {
  const value = record[name];
  if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
    throw invalid(text, `${name} is not an ISO time`);
  }
  return value;
}

function invalid(text: string, problem: string): VulnsubError {
  return new VulnsubError(
    "state_file_invalid",
    `qualys cursor ${JSON.stringify(text.slice(0, 200))}: ${problem}`,
  );
}
