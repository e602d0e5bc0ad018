import { VendorHttpError, throwIfAborted } from "@vulnsub/shared";
import type {
  AdapterBatch,
  AdapterRecord,
  SyncContext,
  VendorAdapter,
} from "../adapter.ts";
import { readRapid7Json } from "./rapid7-body.ts";
import {
  formatRapid7Cursor,
  parseRapid7Cursor,
  type Rapid7Cursor,
  type Rapid7CycleCursor,
} from "./rapid7-cursor.ts";
import { createRapid7Definitions } from "./rapid7-definitions.ts";
import { buildRapid7Record } from "./rapid7-envelope.ts";
import { parseRapid7AssetPage, type Rapid7AssetPage } from "./rapid7-parse.ts";

export {
  rapid7CredentialsFrom,
  rapid7OptionSpecs,
  rapid7Profile,
} from "./rapid7-profile.ts";

/**
 * Rapid7 InsightVM adapter (Cloud Integration API v4).
 *
 * A cycle pages through POST /vm/v4/integration/assets with the vendor
 * cursor until a page has no cursor or no data, and yields one record per
 * (asset, finding) of each page's new, same and remediated arrays:
 * - the first cycle (backfill) sends includeSame=true and the asset
 *   criteria `last_scan_end > <backfillStart>`, so every open finding of
 *   every recently scanned asset arrives in `same`;
 * - later cycles (incremental) send comparisonTime = watermark - lookback
 *   and currentTime = cycle start, without includeSame, so only findings
 *   that appeared, changed or were fixed in between arrive.
 * A cycle's start becomes the next watermark once its last page is acked.
 *
 * The batch cursor is set on the last batch of each page and contains the
 * vendor cursor of the next page (see rapid7-cursor.ts). Whether Rapid7
 * accepts that cursor in a later run is not documented: when a resumed
 * cursor is rejected with HTTP 400, the cycle starts again from its first
 * page with the same criteria (findings already logged are deduplicated
 * by the flusher).
 */
export interface Rapid7AdapterOptions {
  /** Assets per page, 1-500. */
  pageSize: number;
  /** Ids per vulnerabilities request (default 100). */
  definitionBatchSize?: number;
  /** Definitions kept in memory (default 50 000). */
  definitionCacheSize?: number;
  /** Largest response body read (default 256 MiB). */
  maxBodyBytes?: number;
}

export const ASSETS_PATH = "vm/v4/integration/assets";

export function createRapid7Adapter(
  options: Rapid7AdapterOptions,
): VendorAdapter {
  const maxBodyBytes = options.maxBodyBytes ?? 256 * 1024 * 1024;
  const definitions = createRapid7Definitions({
    batchSize: options.definitionBatchSize ?? 100,
    cacheSize: options.definitionCacheSize ?? 50_000,
    maxBodyBytes,
  });

  async function* sync(
    cursorText: string | null,
    context: SyncContext,
  ): AsyncIterable<AdapterBatch> {
    const saved = parseRapid7Cursor(cursorText);
    const watermark = saved.watermark;
    let cycle = saved.cycle ?? startCycle(watermark, context);
    let resumed = saved.cycle !== null;
    definitions.forgetMissing();
    context.logger.info(
      { event: "assets.started", vendor: "rapid7", mode: cycle.mode, resumed },
      `rapid7 ${cycle.mode} cycle started at page ${cycle.page}`,
    );

    for (;;) {
      throwIfAborted(context.signal, "rapid7 sync");
      const where = `rapid7 assets page ${cycle.page} (${cycle.mode})`;
      let page: Rapid7AssetPage;
      try {
        page = await fetchPage(cycle, context, where);
      } catch (error) {
        if (!(resumed && isStaleCursor(error))) throw error;
        context.logger.warn(
          { event: "cursor.rejected", vendor: "rapid7", page: cycle.page },
          `${where}: the saved vendor cursor was rejected, ` +
            "restarting the cycle",
        );
        cycle = restartCycle(cycle, watermark, context);
        resumed = false;
        continue;
      }
      resumed = false;

      const records = await buildRecords(page, cycle, context, where);
      const next = page.assets.length === 0 ? null : page.cursor;
      const cursor: Rapid7Cursor =
        next === null
          ? { formatVersion: 1, watermark: cycle.startedAt, cycle: null }
          : {
              formatVersion: 1,
              watermark,
              cycle: { ...cycle, apiCursor: next, page: cycle.page + 1 },
            };
      yield* splitPage(records, cycle.page, cursor, context.maxBatchRecords);
      if (next === null) {
        context.logger.info(
          {
            event: "assets.finished",
            vendor: "rapid7",
            mode: cycle.mode,
            pages: cycle.page,
            watermark: cursor.watermark,
          },
          `rapid7 ${cycle.mode} cycle completed after ${cycle.page} pages`,
        );
        return;
      }
      cycle = cursor.cycle as Rapid7CycleCursor;
    }
  }

  async function fetchPage(
    cycle: Rapid7CycleCursor | PendingCycle,
    context: SyncContext,
    where: string,
  ): Promise<Rapid7AssetPage> {
    const query = new URLSearchParams({
      size: String(options.pageSize),
      sort: "id,asc",
      includeUniqueIdentifiers: "true",
    });
    let body: Record<string, string> = {};
    if (cycle.mode === "backfill") {
      query.set("includeSame", "true");
      body = { asset: `last_scan_end > ${cycle.since}` };
    } else {
      query.set("comparisonTime", cycle.since);
      query.set("currentTime", cycle.startedAt);
    }
    if (cycle.apiCursor) query.set("cursor", cycle.apiCursor);

    const startedMs = performance.now();
    const response = await context.http.request({
      method: "POST",
      url: `${ASSETS_PATH}?${query}`,
      body: JSON.stringify(body),
      operation: "assets",
    });
    const json = await readRapid7Json(response, {
      maxBodyBytes,
      where,
      signal: context.signal,
    });
    const page = parseRapid7AssetPage(json, where);
    context.logger.debug(
      {
        event: "assets.parsed",
        vendor: "rapid7",
        page: cycle.page,
        assets: page.assets.length,
        durationMs: Math.round(performance.now() - startedMs),
      },
      `${where}: ${page.assets.length} assets`,
    );
    return page;
  }

  async function buildRecords(
    page: Rapid7AssetPage,
    cycle: Rapid7CycleCursor | PendingCycle,
    context: SyncContext,
    where: string,
  ): Promise<AdapterRecord[]> {
    const observedAt = context.now().toISOString();
    const ids = page.assets.flatMap((asset) =>
      LISTS.flatMap((list) =>
        asset.findings[list].map((finding) => finding.vulnerabilityId),
      ),
    );
    const found = await definitions.resolve(ids, context, where);
    const currentTime = cycle.mode === "incremental" ? cycle.startedAt : null;
    const records: AdapterRecord[] = [];
    for (const asset of page.assets) {
      for (const list of LISTS) {
        for (const finding of asset.findings[list]) {
          records.push(
            buildRapid7Record({
              asset,
              finding,
              list,
              definition: found.get(finding.vulnerabilityId) ?? null,
              source: context.source,
              observedAt,
              currentTime,
            }),
          );
        }
      }
    }
    return records;
  }

  return { sync };
}

const LISTS = ["new", "same", "remediated"] as const;

/** A cycle before its first page: no vendor cursor yet. */
type PendingCycle = Omit<Rapid7CycleCursor, "apiCursor"> & { apiCursor: null };

function startCycle(watermark: string | null, context: SyncContext) {
  const startedAt = context.now().toISOString();
  if (watermark === null) {
    const since = context.backfillStart.toISOString();
    return pending("backfill", startedAt, since);
  }
  const sinceMs = Date.parse(watermark) - context.lookbackMs;
  return pending("incremental", startedAt, new Date(sinceMs).toISOString());
}

// A backfill restarts with its own lower bound; an incremental cycle with a
// comparisonTime computed from the watermark again.
function restartCycle(
  cycle: Rapid7CycleCursor | PendingCycle,
  watermark: string | null,
  context: SyncContext,
): PendingCycle {
  if (cycle.mode === "backfill") {
    return pending("backfill", context.now().toISOString(), cycle.since);
  }
  return startCycle(watermark, context);
}

function pending(
  mode: Rapid7CycleCursor["mode"],
  startedAt: string,
  since: string,
): PendingCycle {
  return { mode, startedAt, since, apiCursor: null, page: 1 };
}

function* splitPage(
  records: AdapterRecord[],
  page: number,
  cursor: Rapid7Cursor,
  maxBatchRecords: number,
): Generator<AdapterBatch> {
  const size = Math.max(1, maxBatchRecords);
  for (let start = 0; start + size < records.length; start += size) {
    const chunk = records.slice(start, start + size);
    yield { records: chunk, page, endOfPage: false };
  }
  const tail = records.length % size || Math.min(size, records.length);
  yield {
    records: records.slice(records.length - tail),
    cursor: formatRapid7Cursor(cursor),
    page,
    endOfPage: true,
  };
}

function isStaleCursor(error: unknown): boolean {
  return error instanceof VendorHttpError && error.status === 400;
}
