import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "@vulnsub/shared";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type {
  AdapterBatch,
  SyncContext,
  VendorAdapter,
  VendorHttp,
  VendorRequest,
} from "../../src/adapter.ts";

/** A VendorHttp that records every request before passing it on. */
export function createRecordingHttp(inner: VendorHttp) {
  const requests: VendorRequest[] = [];
  const http: VendorHttp = {
    request(request) {
      requests.push(request);
      return inner.request(request);
    },
  };
  return { http, requests };
}

export type FixtureHandler = (request: VendorRequest, url: URL) => Response;

/**
 * A VendorHttp answering from fixture bodies, for parser and mapping tests
 * that need exact vendor bytes rather than the simulator.
 */
export function createFixtureHttp(handler: FixtureHandler) {
  const requests: VendorRequest[] = [];
  const http: VendorHttp = {
    async request(request) {
      requests.push(request);
      const url = new URL(request.url, "https://rapid7.invalid/");
      return handler(request, url);
    },
  };
  return { http, requests };
}

export function jsonResponse(body: string | object, status = 200): Response {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return new Response(text, {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** A settable clock shared by the simulator and the adapter. */
export function createClock(startMs: number) {
  let nowMs = startMs;
  return {
    now: () => new Date(nowMs),
    advance(ms: number) {
      nowMs += ms;
    },
    get ms() {
      return nowMs;
    },
  };
}

export function createSyncContext(
  http: VendorHttp,
  logger: Logger,
  overrides: Partial<SyncContext> = {},
): SyncContext {
  return {
    http,
    signal: new AbortController().signal,
    logger,
    now: () => new Date(),
    maxBatchRecords: 1000,
    source: "default",
    backfillStart: new Date(Date.parse("2000-01-01T00:00:00Z")),
    lookbackMs: 5 * 60_000,
    ...overrides,
  };
}

export interface SyncOutcome {
  batches: AdapterBatch[];
  /** Cursor of the last batch that had one, or the cursor passed in. */
  cursor: string | null;
  error: unknown;
}

/** Runs one sync to its end or its first error, keeping every batch. */
export async function collectSync(
  adapter: VendorAdapter,
  cursor: string | null,
  context: SyncContext,
): Promise<SyncOutcome> {
  const outcome: SyncOutcome = { batches: [], cursor, error: undefined };
  try {
    for await (const batch of adapter.sync(cursor, context)) {
      outcome.batches.push(batch);
      if (batch.cursor !== undefined) outcome.cursor = batch.cursor;
    }
  } catch (error) {
    outcome.error = error;
  }
  return outcome;
}

/** "findingKey version" of every record of the batches, in order. */
export function versionsOf(batches: readonly AdapterBatch[]): string[] {
  return batches.flatMap((batch) =>
    batch.records.map((record) => `${record.findingKey} ${record.version}`),
  );
}

/** The repository root, for schema/ and the public vendor samples. */
export const repoRoot = resolve(import.meta.dir, "../../../..");

/** Returns null when a log line matches schema/finding.schema.json. */
export function createEnvelopeValidator() {
  const schemaPath = resolve(repoRoot, "schema/finding.schema.json");
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  const validate = ajv.compile(schema);
  return (line: string): string | null => {
    if (validate(JSON.parse(line))) return null;
    return ajv.errorsText(validate.errors);
  };
}
