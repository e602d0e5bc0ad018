import { VendorHttpError, errorFields } from "@vulnsub/shared";
import type { SyncContext } from "../adapter.ts";
import { readRapid7Json } from "./rapid7-body.ts";
import {
  parseRapid7DefinitionPage,
  type Rapid7Definition,
} from "./rapid7-parse.ts";

/**
 * Vulnerability definitions (title, CVEs, severity) for the findings of an
 * asset page. Ids not in the cache are looked up in batches with
 * POST /vm/v4/integration/vulnerabilities and `id IN [...]`, at most
 * `batchSize` ids per request, never one request per id.
 *
 * The cache is an LRU of at most `cacheSize` entries. An id the search did
 * not return is cached as missing (title null) until the next sync cycle,
 * so a retired definition costs one lookup per cycle, not one per page.
 * A lookup rejected with 400 or 404 is logged and its ids get no title;
 * other failures abort the cycle, which the poll loop retries.
 */
export interface Rapid7Definitions {
  /** Definitions of `ids`; null for an id Rapid7 did not return. */
  resolve(
    ids: Iterable<string>,
    context: SyncContext,
    where: string,
  ): Promise<Map<string, Rapid7Definition | null>>;
  /** Forgets cached misses; called at the start of each cycle. */
  forgetMissing(): void;
}

export interface Rapid7DefinitionOptions {
  batchSize: number;
  cacheSize: number;
  maxBodyBytes: number;
}

// Relative, so a base URL with a path prefix (a proxy) keeps its prefix.
export const VULNERABILITIES_PATH = "vm/v4/integration/vulnerabilities";

export function createRapid7Definitions(
  options: Rapid7DefinitionOptions,
): Rapid7Definitions {
  const cache = new Map<string, Rapid7Definition | null>();

  function remember(id: string, definition: Rapid7Definition | null) {
    cache.delete(id);
    cache.set(id, definition);
    if (cache.size <= options.cacheSize) return;
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }

  async function resolve(
    ids: Iterable<string>,
    context: SyncContext,
    where: string,
  ): Promise<Map<string, Rapid7Definition | null>> {
    const result = new Map<string, Rapid7Definition | null>();
    const uncached: string[] = [];
    for (const id of new Set(ids)) {
      const cached = cache.get(id);
      if (cached !== undefined) {
        remember(id, cached);
        result.set(id, cached);
      } else if (!isQuotable(id)) {
        // The criteria language has no documented escape for a quote, so
        // such an id is never sent and its findings get no title.
        context.logger.debug(
          { event: "definition.skipped", vendor: "rapid7", id },
          `${where}: vulnerability id ${JSON.stringify(id)} cannot be quoted`,
        );
        result.set(id, null);
      } else {
        uncached.push(id);
      }
    }

    for (let start = 0; start < uncached.length; start += options.batchSize) {
      const chunk = uncached.slice(start, start + options.batchSize);
      const found = await fetchChunk(chunk, context, where);
      for (const id of chunk) {
        const definition = found.get(id) ?? null;
        remember(id, definition);
        result.set(id, definition);
      }
    }
    return result;
  }

  async function fetchChunk(
    ids: string[],
    context: SyncContext,
    where: string,
  ): Promise<Map<string, Rapid7Definition>> {
    const found = new Map<string, Rapid7Definition>();
    const criteria = `id IN [${ids.map((id) => `'${id}'`).join(", ")}]`;
    let apiCursor: string | null = null;

    // A chunk fits one page. More pages are followed only while ids are
    // missing after a full page, and at most five of them, so a looping
    // cursor cannot spin.
    for (let page = 1; page <= 5; page++) {
      const query = new URLSearchParams({ size: String(options.batchSize) });
      if (apiCursor) query.set("cursor", apiCursor);
      const label = `rapid7 vulnerabilities for ${where} (page ${page})`;
      let response: Response;
      try {
        response = await context.http.request({
          method: "POST",
          url: `${VULNERABILITIES_PATH}?${query}`,
          body: JSON.stringify({ vulnerability: criteria }),
          operation: "vulnerabilities",
        });
      } catch (error) {
        if (!isRejectedLookup(error)) throw error;
        // A rejected lookup would fail every retry of the cycle, so the
        // findings are logged without titles instead of not at all.
        context.logger.warn(
          {
            event: "definitions.rejected",
            vendor: "rapid7",
            ids: ids.length,
            ...errorFields(error),
          },
          `${label}: lookup rejected, ${ids.length} ids get no title`,
        );
        return found;
      }
      const parsed = parseRapid7DefinitionPage(
        await readRapid7Json(response, {
          maxBodyBytes: options.maxBodyBytes,
          where: label,
          signal: context.signal,
        }),
        label,
      );
      for (const definition of parsed.definitions) {
        found.set(definition.id, definition);
      }
      // A short page ends a search-after listing; a missing id then means
      // Rapid7 has no definition for it (retired content).
      const done =
        ids.every((id) => found.has(id)) ||
        parsed.definitions.length < options.batchSize;
      if (done || !parsed.cursor) break;
      apiCursor = parsed.cursor;
    }
    return found;
  }

  return {
    resolve,
    forgetMissing() {
      for (const [id, definition] of cache) {
        if (definition === null) cache.delete(id);
      }
    },
  };
}

function isRejectedLookup(error: unknown): boolean {
  return (
    error instanceof VendorHttpError &&
    (error.status === 400 || error.status === 404)
  );
}

function isQuotable(id: string): boolean {
  return id !== "" && !/['\\\]]/.test(id);
}
