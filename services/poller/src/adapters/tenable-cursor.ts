import { VulnsubError } from "@vulnsub/shared";
import { z } from "zod";

/**
 * The Tenable job cursor, as JSON text. Two shapes:
 * - during a cycle, `{ exportUuid, window, chunksDone }`: the export being
 *   drained, its window and the chunk ids whose every batch is durable, so
 *   a restart polls the same export and fetches only the missing chunks;
 * - between cycles, `{ watermark }`: the start time (epoch milliseconds)
 *   of the last export whose chunks were all durable. The next cycle asks
 *   for findings changed since the watermark minus the lookback.
 */
export type TenableCursor = TenableExportCursor | TenableWatermarkCursor;

export interface TenableExportCursor {
  kind: "export";
  exportUuid: string;
  window: TenableWindow;
  /** Chunk ids fully durable, ascending. */
  chunksDone: number[];
}

export interface TenableWatermarkCursor {
  kind: "watermark";
  /** Epoch milliseconds. */
  watermark: number;
}

/** The time range one export covers. */
export interface TenableWindow {
  /** The export's `since` filter, epoch seconds. */
  since: number;
  /**
   * Epoch milliseconds when the export was requested (or, for an adopted
   * export, when the vendor created it): the next watermark.
   */
  startedAt: number;
}

const epochMs = z.number().int().nonnegative();
const exportSchema = z.strictObject({
  exportUuid: z.string().min(1),
  window: z.strictObject({
    since: z.number().int().nonnegative(),
    startedAt: epochMs,
  }),
  chunksDone: z.array(z.number().int().positive()),
});
const watermarkSchema = z.strictObject({ watermark: epochMs });

/** Parses the stored cursor; null stays null (a job's first run). */
export function parseTenableCursor(text: string | null): TenableCursor | null {
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalidCursor(text, "not JSON", error);
  }

  const asExport = exportSchema.safeParse(value);
  if (asExport.success) {
    const chunksDone = [...new Set(asExport.data.chunksDone)].sort(
      (a, b) => a - b,
    );
    return { kind: "export", ...asExport.data, chunksDone };
  }
  const asWatermark = watermarkSchema.safeParse(value);
  if (asWatermark.success) return { kind: "watermark", ...asWatermark.data };
  throw invalidCursor(
    text,
    "expected {exportUuid, window, chunksDone} or {watermark}",
  );
}

/** Formats the cursor of an export in progress. */
export function formatExportCursor(
  exportUuid: string,
  window: TenableWindow,
  chunksDone: Iterable<number>,
): string {
  const done = [...chunksDone].sort((a, b) => a - b);
  return JSON.stringify({
    exportUuid,
    window: { since: window.since, startedAt: window.startedAt },
    chunksDone: done,
  });
}

/** Formats the cursor that ends a cycle. */
export function formatWatermarkCursor(watermark: number): string {
  return JSON.stringify({ watermark });
}

function invalidCursor(text: string, reason: string, cause?: unknown) {
  const shown = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return new VulnsubError(
    "state_file_invalid",
    `tenable cursor ${shown}: ${reason}`,
    { cause, context: { vendor: "tenable" } },
  );
}
