import type { Logger } from "@vulnsub/shared";

/**
 * The contract between the poll loop and a vendor adapter.
 *
 * An adapter runs one sync cycle at a time, starting from the job's durable
 * cursor, and yields batches in vendor order. The loop sends each batch as
 * a PageBatch and makes a batch's cursor durable only when the flusher has
 * acked it and every batch before it. So an adapter sets `cursor` only on a
 * batch after which resuming from that cursor loses nothing: the last batch
 * of a page (or of a Tenable chunk), never in the middle of one.
 *
 * A cycle ends when the iterator returns. Its last batch carries the cursor
 * that starts the next, incremental, cycle (the new watermark); it may have
 * zero records. A thrown error aborts the cycle; the loop logs it, waits
 * with backoff and starts again from the last durable cursor. So an adapter
 * must never yield records from a page it could not fully parse.
 */
export interface VendorAdapter {
  /** Runs one sync cycle from `cursor` (null on a job's first run). */
  sync(cursor: string | null, context: SyncContext): AsyncIterable<AdapterBatch>;
}

export interface AdapterBatch {
  records: AdapterRecord[];
  /** Opaque cursor, JSON text, valid once this batch is durable. */
  cursor?: string;
  /** Vendor page the batch belongs to, for logs and metrics. */
  page: number;
  /** True on the last batch of a vendor page (or Tenable chunk). */
  endOfPage: boolean;
}

export interface AdapterRecord {
  findingKey: string;
  version: string;
  /** The whole log line: the FindingEnvelope as JSON, one line, no "\n". */
  json: string;
}

export interface SyncContext {
  readonly http: VendorHttp;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Current time; injected so tests control it. */
  readonly now: () => Date;
  /** Records per yielded batch (the page is split when larger). */
  readonly maxBatchRecords: number;
  /** Source name of the job, copied into every envelope. */
  readonly source: string;
  /** First run: findings changed since this time are fetched. */
  readonly backfillStart: Date;
  /** Overlap subtracted from the watermark of an incremental cycle. */
  readonly lookbackMs: number;
}

/**
 * HTTP to one vendor account. Every call waits for the shared rate-limit
 * permit and any vendor pause, retries 5xx, timeouts and resets with bounded
 * backoff, obeys 429 and Qualys 409 by pausing every poller of the account,
 * and throws VendorHttpError for other 4xx. The body of the returned
 * response has not been read; the adapter reads it (streaming) and throws
 * VulnsubError("vendor_response_invalid") when it is malformed.
 */
export interface VendorHttp {
  request(request: VendorRequest): Promise<Response>;
}

export interface VendorRequest {
  method: "GET" | "POST";
  /** Absolute URL, or a path resolved against the configured base URL. */
  url: string;
  /** Extra headers; auth and X-Requested-With are added by VendorHttp. */
  headers?: Record<string, string>;
  body?: string;
  /** Short label for logs and metrics: "detections", "export.status". */
  operation: string;
}

/**
 * Wire-protocol details of one vendor that VendorHttp needs. Each adapter
 * module exports one (qualysProfile, rapid7Profile, tenableProfile).
 */
export interface VendorProfile {
  readonly vendor: "qualys" | "rapid7" | "tenable";
  /** Headers that authenticate every request (Basic, X-Api-Key, ...). */
  authHeaders(credentials: VendorCredentials): Record<string, string>;
  /** Headers sent on every request besides auth (X-Requested-With, ...). */
  readonly staticHeaders: Readonly<Record<string, string>>;
  /**
   * Parses a throttling response: Tenable 429 + retry-after, Qualys 409 with
   * SIMPLE_RETURN 1960/1965. `body` is the response text (the caller reads
   * at most 64 KiB of it, only for 409 and 429). Returns null when the
   * response is not a throttle signal.
   */
  parseThrottle(response: Response, body: string, now: Date): ThrottleSignal | null;
  /**
   * Budget the vendor advertises in response headers (Qualys
   * X-RateLimit-Limit and X-RateLimit-Window-Sec), or null.
   */
  parseAdvertisedLimit(response: Response): AdvertisedLimit | null;
  /**
   * Concurrent calls the vendor allows (Qualys X-Concurrency-Limit-Limit),
   * or null when the vendor advertises none.
   */
  parseConcurrencyLimit(response: Response): number | null;
}

export type VendorCredentials =
  | { vendor: "qualys"; username: string; password: string }
  | { vendor: "rapid7"; apiKey: string }
  | { vendor: "tenable"; accessKey: string; secretKey: string };

export interface ThrottleSignal {
  /** "rate": wait `waitMs` then retry; "concurrency": wait for a slot. */
  kind: "rate" | "concurrency";
  /** How long every poller of the account must wait, in milliseconds. */
  waitMs: number;
  /** Short reason for logs: "qualys 1965", "http 429". */
  reason: string;
}

export interface AdvertisedLimit {
  requests: number;
  windowMs: number;
}
