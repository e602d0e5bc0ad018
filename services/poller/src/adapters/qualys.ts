import { VulnsubError, throwIfAborted } from "@vulnsub/shared";
import type {
  AdapterBatch,
  AdapterRecord,
  SyncContext,
  VendorAdapter,
} from "../adapter.ts";
import { describeUrl } from "../vendor-http-body.ts";
import {
  formatQualysCursor,
  formatQualysTime,
  parseQualysCursor,
  type QualysCursor,
} from "./qualys-cursor.ts";
import { createQualysEnvelope, QualysRecordError } from "./qualys-envelope.ts";
import type { QualysApiVersion } from "./qualys-options.ts";
import { checkPageUrl, idMinOf } from "./qualys-page-url.ts";
import {
  QualysPageError,
  readDetectionPage,
  type DetectionPageTrailer,
} from "./qualys-xml-parser.ts";

export { qualysProfile } from "./qualys-profile.ts";
export { qualysOptionSpecs } from "./qualys-options.ts";

/**
 * Qualys VMDR adapter: reads the Host List Detection API page by page.
 *
 * A cycle requests every status (New, Active, Fixed, Re-Opened) with
 * detection_processed_after = backfill start on the first cycle, else the
 * previous cycle's start minus the lookback. Each page is streamed: records
 * go out in batches of maxBatchRecords while the page is read, but only the
 * page's last batch carries a cursor (the next page's URL, from WARNING
 * 1980, or the new watermark after the last page). A failure in mid-page
 * therefore re-fetches the whole page, and the flusher drops what it
 * already wrote. Malformed or truncated XML, a failed body, a SIMPLE_RETURN
 * error document or a badly typed value throws vendor_response_invalid and
 * nothing more is yielded.
 */
export interface QualysAdapterOptions {
  /** The configured API server; WARNING URLs must stay on its origin. */
  baseUrl: string;
  apiVersion?: QualysApiVersion;
  /** Hosts per page (truncation_limit); default 1000. */
  truncationLimit?: number;
  /** Fetch Info detections too (show_igs=1); default false. */
  showIgs?: boolean;
  /** Fetch RESULTS (show_results=1); default true. */
  showResults?: boolean;
  /** Fetch QDS (show_qds=1); default false. */
  showQds?: boolean;
}

const ALL_STATUSES = "New,Active,Fixed,Re-Opened";
const OPERATION = "detections";

export function createQualysAdapter(
  options: QualysAdapterOptions,
): VendorAdapter {
  const apiVersion = options.apiVersion ?? "2.0";
  const endpoint = new URL(
    `${options.baseUrl.replace(/\/+$/, "")}/api/${apiVersion}/fo/asset/host/vm/detection/`,
  );

  function firstPageUrl(since: string): string {
    const params = new URLSearchParams({
      action: "list",
      truncation_limit: String(options.truncationLimit ?? 1000),
      status: ALL_STATUSES,
      show_results: options.showResults === false ? "0" : "1",
      show_igs: options.showIgs ? "1" : "0",
    });
    if (options.showQds) params.set("show_qds", "1");
    params.set("detection_processed_after", since);
    return `${endpoint.toString()}?${params.toString()}`;
  }

  async function* sync(
    cursorText: string | null,
    context: SyncContext,
  ): AsyncGenerator<AdapterBatch> {
    let state = startState(cursorText, context);
    checkCursorUrl(state.nextUrl);

    for (;;) {
      throwIfAborted(context.signal, "qualys sync");
      const page = yield* syncPage(state, context);
      const cursor: QualysCursor = page.nextUrl
        ? { ...state, page: state.page + 1, nextUrl: page.nextUrl }
        : { formatVersion: 1, phase: "done", watermark: state.cycleStartedAt };
      yield {
        records: page.records,
        cursor: formatQualysCursor(cursor),
        page: state.page,
        endOfPage: true,
      };
      if (cursor.phase === "done") return;
      state = cursor;
    }
  }

  // A stored URL from another base URL (the configuration changed) or a
  // tampered state file is rejected rather than followed.
  function checkCursorUrl(url: string) {
    try {
      checkPageUrl(url, endpoint, null, "nextUrl");
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new VulnsubError(
        "state_file_invalid",
        `qualys cursor: ${message}`,
        {
          cause: error,
        },
      );
    }
  }

  function startState(
    cursorText: string | null,
    context: SyncContext,
  ): PagingState {
    const stored = cursorText === null ? null : parseQualysCursor(cursorText);
    if (stored?.phase === "paging") return stored;

    const cycleStartedAt = context.now().toISOString();
    const sinceMs = stored
      ? Date.parse(stored.watermark) - context.lookbackMs
      : context.backfillStart.getTime();
    const since = formatQualysTime(new Date(sinceMs));
    return {
      formatVersion: 1,
      phase: "paging",
      cycleStartedAt,
      since,
      nextUrl: firstPageUrl(since),
      page: 1,
    };
  }

  /**
   * Fetches and streams one page. Yields full batches without a cursor and
   * returns the rest of the page's records with the next page's URL.
   */
  async function* syncPage(
    state: PagingState,
    context: SyncContext,
  ): AsyncGenerator<
    AdapterBatch,
    { records: AdapterRecord[]; nextUrl: string | null }
  > {
    const currentIdMin = idMinOf(state.nextUrl);
    const label =
      `qualys ${OPERATION} page ${state.page}` +
      (currentIdMin === null ? "" : ` (id_min=${currentIdMin})`);
    const startedAt = performance.now();
    const response = await context.http.request({
      method: "GET",
      url: state.nextUrl,
      operation: OPERATION,
    });
    const observedAt = context.now().toISOString();
    let buffer: AdapterRecord[] = [];
    let trailer: DetectionPageTrailer;

    const reader = readDetectionPage(response.body, context.signal);
    try {
      for (;;) {
        const step = await reader.next();
        if (step.done) {
          trailer = step.value;
          break;
        }
        // Map the whole chunk first so a bad record stops the page before
        // any record of its chunk is yielded.
        const records = step.value.map((item) => {
          const envelope = createQualysEnvelope(item, {
            source: context.source,
            observedAt,
          });
          return {
            findingKey: envelope.findingKey,
            version: envelope.version,
            json: JSON.stringify(envelope),
          };
        });
        for (const record of records) {
          buffer.push(record);
          if (buffer.length < context.maxBatchRecords) continue;
          yield { records: buffer, page: state.page, endOfPage: false };
          buffer = [];
        }
      }
    } catch (error) {
      throw pageError(error, label, state.nextUrl);
    } finally {
      // Cancels the body when the page stopped early; no-op after the end.
      await reader.return(undefined as never);
    }

    const nextUrl = nextPageUrl(
      trailer,
      label,
      state.nextUrl,
      currentIdMin,
      context,
    );
    context.logger.info(
      {
        event: "detections.parsed",
        vendor: "qualys",
        source: context.source,
        page: state.page,
        idMin: currentIdMin,
        hosts: trailer.hosts,
        detections: trailer.detections,
        lastPage: nextUrl === null,
        durationMs: Math.round(performance.now() - startedAt),
      },
      `${label}: ${trailer.detections} detections on ${trailer.hosts} hosts`,
    );
    return { records: buffer, nextUrl };
  }

  function nextPageUrl(
    trailer: DetectionPageTrailer,
    label: string,
    url: string,
    currentIdMin: number | null,
    context: SyncContext,
  ): string | null {
    const warning = trailer.warning;
    if (!warning) return null;
    if (warning.code !== "1980" && warning.url === null) {
      context.logger.warn(
        {
          event: "page.warning_ignored",
          vendor: "qualys",
          code: warning.code,
          text: warning.text,
        },
        `${label}: WARNING ${warning.code} without a URL ignored: ${warning.text}`,
      );
      return null;
    }
    if (warning.code !== "1980" || warning.url === null) {
      throw invalidResponse(
        `${label}: WARNING code ${warning.code} with URL ${warning.url ?? "(none)"} ` +
          "is not a 1980 truncation notice with a next-page URL",
        url,
      );
    }
    try {
      return checkPageUrl(warning.url, endpoint, currentIdMin, "WARNING URL");
    } catch (error) {
      throw pageError(error, label, url);
    }
  }

  return { sync };
}

type PagingState = Extract<QualysCursor, { phase: "paging" }>;

function pageError(error: unknown, label: string, url: string): unknown {
  if (error instanceof QualysPageError || error instanceof QualysRecordError) {
    return invalidResponse(`${label}: ${error.message}`, url, error);
  }
  return error;
}

function invalidResponse(
  message: string,
  url: string,
  cause?: unknown,
): VulnsubError {
  const request = `GET ${describeUrl(url)}`;
  return new VulnsubError(
    "vendor_response_invalid",
    `${message} (request ${request})`,
    {
      cause,
      context: {
        vendor: "qualys",
        operation: OPERATION,
        url: describeUrl(url),
      },
    },
  );
}
