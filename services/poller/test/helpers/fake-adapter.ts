import { VulnsubError } from "@vulnsub/shared";
import type {
  AdapterBatch,
  AdapterRecord,
  SyncContext,
  VendorAdapter,
} from "../../src/adapter.ts";

/**
 * A vendor adapter over numbered pages. Its cursor is `{"page":N}`, where
 * N is the last page fully delivered. A cycle fetches pages N+1 to
 * `pageCount()` and splits each into batches of `maxBatchRecords`. The
 * last batch of a page ends it and carries the cursor. With nothing new,
 * the cycle yields one empty batch that keeps the cursor.
 *
 * Records come from `fetchPage`: generated in memory by default, or read
 * over HTTP through the cycle's VendorHttp with `fetchPageOverHttp`.
 */
export interface FakeAdapterOptions {
  pageCount: () => number;
  fetchPage?: (page: number, context: SyncContext) => Promise<AdapterRecord[]>;
  /** Throws vendor_response_invalid before yielding this page, if true. */
  failPage?: (page: number) => boolean;
  /** Waited before each batch after the first of a page (abortable). */
  batchDelayMs?: number;
}

export interface FakeAdapter extends VendorAdapter {
  /** Cursor each sync call started from, in order. */
  readonly syncCursors: (string | null)[];
  /** Batches yielded so far over all cycles. */
  readonly yielded: number;
}

export const RECORDS_PER_PAGE = 5;

export function createFakeAdapter(options: FakeAdapterOptions): FakeAdapter {
  const syncCursors: (string | null)[] = [];
  let yielded = 0;
  const fetchPage = options.fetchPage ?? generatePage;

  async function* sync(
    cursor: string | null,
    context: SyncContext,
  ): AsyncGenerator<AdapterBatch> {
    syncCursors.push(cursor);
    const donePage = cursor ? parsePageCursor(cursor) : 0;
    const lastPage = options.pageCount();

    if (donePage >= lastPage) {
      yielded++;
      yield {
        records: [],
        cursor: pageCursor(donePage),
        page: donePage,
        endOfPage: true,
      };
      return;
    }
    for (let page = donePage + 1; page <= lastPage; page++) {
      if (options.failPage?.(page)) {
        throw new VulnsubError(
          "vendor_response_invalid",
          `fake page ${page}: truncated response`,
        );
      }
      const records = await fetchPage(page, context);
      const size = context.maxBatchRecords;
      for (
        let start = 0;
        start < records.length || start === 0;
        start += size
      ) {
        if (start > 0 && options.batchDelayMs) {
          await Bun.sleep(options.batchDelayMs);
          context.signal.throwIfAborted();
        }
        const last = start + size >= records.length;
        yielded++;
        yield {
          records: records.slice(start, start + size),
          cursor: last ? pageCursor(page) : undefined,
          page,
          endOfPage: last,
        };
      }
    }
  }

  return {
    sync,
    syncCursors,
    get yielded() {
      return yielded;
    },
  };
}

export function pageCursor(page: number): string {
  return JSON.stringify({ page });
}

export function parsePageCursor(cursor: string): number {
  const value = JSON.parse(cursor) as { page?: unknown };
  if (typeof value.page !== "number") throw new Error(`bad cursor ${cursor}`);
  return value.page;
}

/** Returns the finding keys of page `page`, in order. */
export function pageKeys(page: number, count = RECORDS_PER_PAGE): string[] {
  return Array.from({ length: count }, (_, i) => `finding-${page}-${i}`);
}

async function generatePage(
  page: number,
  context: SyncContext,
): Promise<AdapterRecord[]> {
  return pageKeys(page).map((key) => recordOf(key, context.source));
}

/** Builds a record whose JSON carries the fields the flusher checks. */
export function recordOf(findingKey: string, source: string): AdapterRecord {
  const version = "v1";
  return {
    findingKey,
    version,
    json: JSON.stringify({ vendor: "tenable", source, findingKey, version }),
  };
}

/**
 * Reads page N as JSON `{ "keys": [...] }` from GET /pages/N through the
 * cycle's VendorHttp, so rate limits and retries apply.
 */
export async function fetchPageOverHttp(
  page: number,
  context: SyncContext,
): Promise<AdapterRecord[]> {
  const response = await context.http.request({
    method: "GET",
    url: `pages/${page}`,
    operation: "page",
  });
  const body = (await response.json()) as { keys?: unknown };
  if (!Array.isArray(body.keys)) {
    throw new VulnsubError(
      "vendor_response_invalid",
      `fake page ${page}: no keys`,
    );
  }
  return body.keys.map((key) => recordOf(String(key), context.source));
}
