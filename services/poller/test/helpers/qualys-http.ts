import { readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type {
  AdapterBatch,
  SyncContext,
  VendorAdapter,
  VendorHttp,
  VendorRequest,
} from "../../src/adapter.ts";
import { createLogCapture } from "./log-capture.ts";

export const repoRoot = join(import.meta.dir, "../../../..");

/** Base URL the Qualys fixtures' WARNING URLs point at. */
export const FIXTURE_BASE_URL = "https://qualysapi.example.test";

/** A page body, or a function building the whole response. */
export type FixturePage = string | (() => Response);

/**
 * Creates a VendorHttp that returns the next fixture page per request, sending
 * string bodies in chunks of `chunkBytes` so the adapter parses a stream.
 */
export function createFixtureHttp(
  pages: FixturePage[],
  options: { chunkBytes?: number } = {},
): VendorHttp & { requests: VendorRequest[] } {
  const requests: VendorRequest[] = [];
  const queue = [...pages];
  return {
    requests,
    async request(request) {
      requests.push(request);
      const page = queue.shift();
      if (page === undefined) {
        throw new Error(`fixture http: no page left for ${request.url}`);
      }
      if (typeof page === "function") return page();
      return new Response(chunkedStream(page, options.chunkBytes ?? 512), {
        status: 200,
        headers: { "content-type": "application/xml" },
      });
    },
  };
}

/** Streams `text` as UTF-8 in chunks of `chunkBytes`. */
export function chunkedStream(
  text: string,
  chunkBytes: number,
): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + chunkBytes));
      offset += chunkBytes;
    },
  });
}

/** Builds a SyncContext for adapter tests, with a fixed clock unless `now` is given. */
export function createTestContext(
  http: VendorHttp,
  overrides: Partial<SyncContext> = {},
): SyncContext {
  return {
    http,
    signal: new AbortController().signal,
    logger: createLogCapture().logger,
    now: () => new Date("2026-03-01T12:00:00.000Z"),
    maxBatchRecords: 100,
    source: "main",
    backfillStart: new Date("2020-01-01T00:00:00Z"),
    lookbackMs: 60_000,
    ...overrides,
  };
}

/** Everything one sync cycle yielded, or the error it threw. */
export interface CycleResult {
  batches: AdapterBatch[];
  error: unknown;
}

export async function runCycle(
  adapter: VendorAdapter,
  cursor: string | null,
  context: SyncContext,
  maxBatches = 100_000,
): Promise<CycleResult> {
  const batches: AdapterBatch[] = [];
  try {
    for await (const batch of adapter.sync(cursor, context)) {
      batches.push(batch);
      if (batches.length >= maxBatches) throw new Error("too many batches");
    }
    return { batches, error: null };
  } catch (error) {
    return { batches, error };
  }
}

/** Cursor of the last batch that has one, or `fallback`. */
export function lastCursor(
  batches: AdapterBatch[],
  fallback: string | null,
): string | null {
  for (let i = batches.length - 1; i >= 0; i--) {
    const cursor = batches[i]?.cursor;
    if (cursor !== undefined) return cursor;
  }
  return fallback;
}

/** Returns every record of `batches`, in order. */
export function recordsOf(batches: AdapterBatch[]) {
  return batches.flatMap((batch) => batch.records);
}

/** Reads a file of test/fixtures/qualys. */
export function readQualysFixture(name: string): string {
  return readFileSync(
    join(import.meta.dir, "../fixtures/qualys", name),
    "utf8",
  );
}

/**
 * Validates a log line against schema/finding.schema.json; returns null
 * when valid, else the schema errors as text.
 */
export function createEnvelopeValidator() {
  const schemaPath = join(repoRoot, "schema/finding.schema.json");
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  const validate = ajv.compile(schema);
  return (line: string): string | null => {
    if (validate(JSON.parse(line))) return null;
    return ajv.errorsText(validate.errors);
  };
}
