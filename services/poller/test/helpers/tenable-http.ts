import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
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
import { tenableProfile } from "../../src/adapters/tenable.ts";
import { createVendorHttp } from "../../src/vendor-http.ts";

/**
 * Test helpers for the Tenable adapter: a VendorHttp aimed at a simulator,
 * a sync context, a cycle runner that records what the adapter yielded,
 * and the finding log line schema validator.
 */

export const repoRoot = resolve(import.meta.dir, "../../../..");

export const SIMULATOR_CREDENTIALS = {
  vendor: "tenable",
  accessKey: "demo-access",
  secretKey: "demo-secret",
} as const;

/** Creates a VendorHttp with no rate gate and short retry waits. */
export function createSimulatorHttp(
  baseUrl: string,
  logger: Logger,
  signal?: AbortSignal,
): VendorHttp {
  return createVendorHttp({
    profile: tenableProfile,
    baseUrl,
    credentials: SIMULATOR_CREDENTIALS,
    gate: null,
    logger,
    signal,
    baseBackoffMs: 5,
    maxBackoffMs: 50,
    requestTimeoutMs: 10_000,
  });
}

/** Wraps a VendorHttp and records every request it was given. */
export function recordRequests(http: VendorHttp) {
  const requests: VendorRequest[] = [];
  return {
    requests,
    http: {
      request(request: VendorRequest) {
        requests.push(request);
        return http.request(request);
      },
    } satisfies VendorHttp,
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
    maxBatchRecords: 100,
    source: "default",
    backfillStart: new Date(Date.now() - 3 * 365 * 86_400_000),
    lookbackMs: 0,
    ...overrides,
  };
}

export interface CycleRecord {
  findingKey: string;
  version: string;
  json: string;
}

export interface CycleOutcome {
  batches: AdapterBatch[];
  records: CycleRecord[];
  /** Cursor of the last batch that carried one. */
  cursor: string | null;
  /** The error the cycle ended with, or null when it completed. */
  error: unknown;
}

/**
 * Runs one cycle and collects its batches. With `stopAfterCursors` the
 * cycle is abandoned after that many cursor batches, as when the poller
 * dies right after those cursors became durable.
 */
export async function runTenableCycle(
  adapter: VendorAdapter,
  cursor: string | null,
  context: SyncContext,
  options: { stopAfterCursors?: number } = {},
): Promise<CycleOutcome> {
  const outcome: CycleOutcome = {
    batches: [],
    records: [],
    cursor,
    error: null,
  };
  let cursors = 0;
  try {
    for await (const batch of adapter.sync(cursor, context)) {
      outcome.batches.push(batch);
      outcome.records.push(...batch.records);
      if (batch.cursor === undefined) continue;
      outcome.cursor = batch.cursor;
      cursors++;
      if (cursors === options.stopAfterCursors) break;
    }
  } catch (error) {
    outcome.error = error;
  }
  return outcome;
}

/** Returns `findingKey version` texts, one per record, sorted. */
export function versionsOf(
  items: readonly { findingKey: string; version: string }[],
): string[] {
  return items.map((item) => `${item.findingKey} ${item.version}`).sort();
}

/** Validates log lines against schema/finding.schema.json. */
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
