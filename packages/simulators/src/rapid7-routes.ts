import type { ServedVersion } from "./common.ts";
import {
  CriteriaError,
  parseAssetCriteria,
  parseIsoTime,
  parseVulnerabilityCriteria,
} from "./rapid7-criteria.ts";
import type { Rapid7Dataset } from "./rapid7-dataset.ts";
import {
  searchAssets,
  searchVulnerabilities,
  type SearchPage,
} from "./rapid7-search.ts";

/**
 * Request handling of the two Cloud Integration API v4 searches, from the
 * parsed request to a reply: query validation, criteria, the cursor and
 * the page body. Transport concerns (auth, rate limit, faults) live in
 * rapid7.ts.
 *
 * The cursor has the vendor's shape, `<search hash>:::_S:::<last id>`: a
 * search-after on the sort key. It stays valid across epochs and restarts
 * of the same search, and is rejected (400) when the hash does not match
 * the search it is sent with. Every page with data carries a cursor, as in
 * recorded responses; the request after the last one returns `data: []`
 * and `cursor: null`.
 */

export interface ApiRequest {
  url: URL;
  contentType: string;
  body: string;
  /** The simulator clock, used when currentTime is absent. */
  nowMs: number;
}

export interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** Versions in a 200 asset page; added to the ground truth once sent. */
  served?: ServedVersion[];
}

export const ASSETS_PATH = "/vm/v4/integration/assets";
export const VULNERABILITIES_PATH = "/vm/v4/integration/vulnerabilities";
export const ERROR_TYPE = "com.rapid7.spring.rest.error.resource.ErrorResource";

export function handleAssetSearch(
  dataset: Rapid7Dataset,
  request: ApiRequest,
  maxPageSize: number,
): Reply {
  try {
    const query = parseCommonQuery(request, maxPageSize);
    const params = request.url.searchParams;
    const criteria = parseSearchBody(request);
    const comparisonMs = optionalTime(params, "comparisonTime");
    const currentMs = optionalTime(params, "currentTime") ?? request.nowMs;
    if (comparisonMs !== null && comparisonMs > currentMs) {
      throw new CriteriaError("comparisonTime must not be after currentTime");
    }
    const includeSame = params.get("includeSame") === "true";
    const hash = searchHash([
      ASSETS_PATH,
      criteria.asset ?? "",
      criteria.vulnerability ?? "",
      params.get("comparisonTime") ?? "",
      params.get("currentTime") ?? "",
      String(includeSame),
      query.sort,
    ]);
    const page = searchAssets(dataset.assets, {
      clauses: parseAssetCriteria(criteria.asset),
      vulnerabilityFilter: parseVulnerabilityCriteria(criteria.vulnerability),
      comparisonMs,
      currentMs,
      includeSame,
      includeUniqueIdentifiers:
        params.get("includeUniqueIdentifiers") === "true",
      descending: query.sort === "id,desc",
      afterId: parseCursor(params.get("cursor"), hash),
      size: query.size,
    });
    return pageReply(request, page, query, hash);
  } catch (error) {
    return rejectionReply(error);
  }
}

export function handleVulnerabilitySearch(
  dataset: Rapid7Dataset,
  request: ApiRequest,
  maxPageSize: number,
): Reply {
  try {
    const query = parseCommonQuery(request, maxPageSize);
    if (query.sort !== "id,asc") {
      throw new CriteriaError(`sort ${query.sort} is not supported`);
    }
    const criteria = parseSearchBody(request);
    const hash = searchHash([
      VULNERABILITIES_PATH,
      criteria.vulnerability ?? "",
    ]);
    const page = searchVulnerabilities(
      dataset.catalog,
      parseVulnerabilityCriteria(criteria.vulnerability),
      parseCursor(request.url.searchParams.get("cursor"), hash),
      query.size,
    );
    return { ...pageReply(request, page, query, hash), served: undefined };
  } catch (error) {
    return rejectionReply(error);
  }
}

/** A Spring ErrorResource body, the shape of v4 4xx and 5xx responses. */
export function errorReply(
  status: number,
  message: string,
  headers?: Record<string, string>,
): Reply {
  const body = JSON.stringify({
    _type: ERROR_TYPE,
    status,
    localized_message: null,
    message,
    throwable: null,
  });
  return { status, body, headers };
}

class MediaTypeError extends Error {}

function rejectionReply(error: unknown): Reply {
  if (error instanceof CriteriaError) return errorReply(400, error.message);
  if (error instanceof MediaTypeError) return errorReply(415, error.message);
  throw error;
}

interface CommonQuery {
  size: number;
  page: number;
  sort: string;
}

function parseCommonQuery(
  request: ApiRequest,
  maxPageSize: number,
): CommonQuery {
  const params = request.url.searchParams;
  if (!request.contentType.toLowerCase().startsWith("application/json")) {
    throw new MediaTypeError(
      `Content type '${request.contentType}' not supported: ` +
        "use application/json",
    );
  }
  const size = integerParam(params, "size", 10);
  if (size < 1 || size > maxPageSize) {
    throw new CriteriaError(
      `Your query string format is not valid. It has 1 error: size must be ` +
        `between 1 and ${maxPageSize}, was ${size}`,
    );
  }
  const page = integerParam(params, "page", 0);
  const sort = (params.get("sort") ?? "id,asc").toLowerCase();
  if (sort !== "id,asc" && sort !== "id,desc") {
    throw new CriteriaError(`sort ${sort} is not supported`);
  }
  return { size, page, sort };
}

function parseSearchBody(request: ApiRequest): {
  asset?: string;
  vulnerability?: string;
} {
  if (request.body.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(request.body);
  } catch {
    throw new CriteriaError("JSON parse error: the request body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CriteriaError("the request body must be a JSON object");
  }
  const { asset, vulnerability } = value as Record<string, unknown>;
  const fields = [
    ["asset", asset],
    ["vulnerability", vulnerability],
  ] as const;
  for (const [name, field] of fields) {
    if (field !== undefined && typeof field !== "string") {
      throw new CriteriaError(`${name} criteria must be a string`);
    }
  }
  return {
    asset: asset as string | undefined,
    vulnerability: vulnerability as string | undefined,
  };
}

function pageReply(
  request: ApiRequest,
  page: SearchPage,
  query: CommonQuery,
  hash: number,
): Reply {
  const cursor = page.lastId === null ? null : `${hash}:::_S:::${page.lastId}`;
  const self = request.url.toString();
  const links = [{ href: self, rel: "self" }];
  if (cursor !== null) {
    const next = new URL(self);
    next.searchParams.set("page", String(query.page + 1));
    next.searchParams.set("cursor", cursor);
    links.push({ href: next.toString(), rel: "next" });
  }
  const body = JSON.stringify({
    data: page.data,
    metadata: {
      number: query.page,
      size: query.size,
      totalResources: page.totalResources,
      totalPages: Math.ceil(page.totalResources / query.size),
      cursor,
    },
    links,
  });
  return { status: 200, body, served: page.served };
}

function parseCursor(text: string | null, hash: number): string | null {
  if (text === null || text === "") return null;
  const match = /^(-?\d+):::_S:::(.+)$/.exec(text);
  if (!match || Number(match[1]) !== hash) {
    throw new CriteriaError(
      `The cursor ${text} is not valid for this search; start the search again`,
    );
  }
  return match[2] as string;
}

function optionalTime(params: URLSearchParams, name: string): number | null {
  const text = params.get(name);
  if (text === null || text === "") return null;
  const value = parseIsoTime(text);
  if (value === null) {
    throw new CriteriaError(`${name} ${text} is not an ISO 8601 date-time`);
  }
  return value;
}

function integerParam(
  params: URLSearchParams,
  name: string,
  fallback: number,
): number {
  const text = params.get(name);
  if (text === null || text === "") return fallback;
  if (!/^\d+$/.test(text)) {
    throw new CriteriaError(`${name} ${text} is not a non-negative integer`);
  }
  return Number(text);
}

// Java's String.hashCode, as the sign and range of the vendor's number
// suggest: a 32-bit signed integer.
function searchHash(parts: readonly string[]): number {
  let hash = 0;
  for (const char of parts.join("\u0000")) {
    hash = (Math.imul(hash, 31) + (char.codePointAt(0) ?? 0)) | 0;
  }
  return hash;
}
