import {
  VendorHttpError,
  VulnsubError,
  errorFields,
  throwIfAborted,
  type Logger,
} from "@vulnsub/shared";
import type { AdapterBatch, SyncContext } from "../adapter.ts";
import { sleepMs } from "../vendor-http-body.ts";
import type { TenableSettings } from "./tenable.ts";
import {
  BodyReadError,
  createTenableApi,
  type TenableApi,
} from "./tenable-api.ts";
import {
  parseTenableChunk,
  toTenableRecord,
  type TenableFinding,
} from "./tenable-chunk.ts";
import {
  formatExportCursor,
  formatWatermarkCursor,
  parseTenableCursor,
  type TenableWindow,
} from "./tenable-cursor.ts";
import type { TenableExportStatus } from "./tenable-export-parsers.ts";

/**
 * One Tenable sync cycle:
 * 1. pick the window: resume the export named by the cursor, or request
 *    one with `since` = watermark - lookback (first run: backfillStart)
 *    and states OPEN, REOPENED and FIXED;
 * 2. poll the export status with a growing wait (min, min + min/2, ...,
 *    max) and download each listed chunk at once, in the order listed;
 * 3. yield each chunk as batches; the last batch of a chunk carries the
 *    cursor whose chunksDone includes it, so a restart skips it;
 * 4. once FINISHED and every chunk is done, yield an empty batch whose
 *    cursor is `{ watermark: startedAt }`.
 * A 404 on the export or a chunk (expired), or an ERROR or CANCELLED
 * export, restarts the window with a new export, up to
 * tenableExportAttempts exports in all. Records already yielded come again,
 * and the flusher drops the duplicates.
 */
export async function* syncTenable(
  settings: TenableSettings,
  cursorText: string | null,
  context: SyncContext,
): AsyncGenerator<AdapterBatch> {
  const logger = context.logger.child({ vendor: "tenable" });
  const api = createTenableApi(context.http, {
    maxChunkBytes: settings.tenableMaxChunkBytes,
  });
  const cursor = parseTenableCursor(cursorText);
  let window: TenableWindow;
  let run: ExportRun | null = null;
  if (cursor?.kind === "export") {
    window = cursor.window;
    run = {
      uuid: cursor.exportUuid,
      done: new Set(cursor.chunksDone),
      adopted: false,
    };
  } else {
    const fromMs = cursor
      ? cursor.watermark - context.lookbackMs
      : context.backfillStart.getTime();
    window = { since: Math.max(0, Math.floor(fromMs / 1000)), startedAt: 0 };
  }

  const deps = { api, settings, context, logger };
  let exportsTried = 0;
  for (;;) {
    throwIfAborted(context.signal, "tenable sync");
    if (!run) {
      exportsTried++;
      window = { since: window.since, startedAt: context.now().getTime() };
      run = await startExport(deps, window);
    }
    try {
      yield* drainExport(deps, run, window);
      break;
    } catch (error) {
      const restart = restartReason(error);
      if (!restart) throw error;
      logRestart(logger, run.uuid, restart, error);
      if (exportsTried >= settings.tenableExportAttempts) {
        throw new VulnsubError(
          "vendor_export_failed",
          `tenable export window since ${window.since}: ${restart} ` +
            `after ${exportsTried} exports`,
          {
            cause: error,
            context: { vendor: "tenable", exportUuid: run.uuid },
          },
        );
      }
      run = null;
    }
  }

  yield {
    records: [],
    cursor: formatWatermarkCursor(window.startedAt),
    page: 0,
    endOfPage: true,
  };
}

interface ExportRun {
  uuid: string;
  /** Chunk ids whose batches were all yielded. */
  done: Set<number>;
  /** True when the export was another request's, taken over on a 409. */
  adopted: boolean;
}

interface SyncDeps {
  api: TenableApi;
  settings: TenableSettings;
  context: SyncContext;
  logger: Logger;
}

/** Raised inside the drain when the vendor gave up on the export. */
class ExportFailedError extends VulnsubError {
  constructor(uuid: string, status: TenableExportStatus) {
    const reason = status.reason ? `: ${status.reason}` : "";
    super(
      "vendor_export_failed",
      `tenable export ${uuid} ended ${status.status}${reason}`,
      {
        context: {
          vendor: "tenable",
          exportUuid: uuid,
          status: status.status,
        },
      },
    );
  }
}

async function startExport(
  deps: SyncDeps,
  window: TenableWindow,
): Promise<ExportRun> {
  const { settings } = deps;
  const created = await deps.api.requestExport({
    num_assets: settings.tenableNumAssets,
    include_unlicensed: settings.tenableIncludeUnlicensed,
    filters: { since: window.since, state: ["OPEN", "REOPENED", "FIXED"] },
  });
  deps.logger.info(
    {
      event: created.adopted ? "export.adopted" : "export.created",
      exportUuid: created.uuid,
      since: window.since,
    },
    `tenable export ${created.uuid} ` +
      `${created.adopted ? "adopted" : "created"} ` +
      `for findings since ${window.since}`,
  );
  return { uuid: created.uuid, done: new Set(), adopted: created.adopted };
}

async function* drainExport(
  deps: SyncDeps,
  run: ExportRun,
  window: TenableWindow,
): AsyncGenerator<AdapterBatch> {
  const { settings, context } = deps;
  const stepMs = Math.max(1, Math.floor(settings.tenableStatusPollMinMs / 2));
  let waitMs = settings.tenableStatusPollMinMs;

  for (;;) {
    const status = await deps.api.getStatus(run.uuid);
    // An adopted export snapshots findings from its own creation time, so
    // the next watermark must not be later than that.
    if (run.adopted && status.created !== null) {
      window.startedAt = Math.min(window.startedAt, status.created);
    }
    if (status.status === "ERROR" || status.status === "CANCELLED") {
      throw new ExportFailedError(run.uuid, status);
    }

    const pending = status.chunksAvailable.filter((id) => !run.done.has(id));
    for (const chunkId of pending) {
      yield* emitChunk(deps, run, window, chunkId);
    }

    if (status.status === "FINISHED") {
      const lost = status.chunksFailed.length + status.chunksCancelled.length;
      if (lost > 0) throw new ExportFailedError(run.uuid, status);
      return;
    }
    if (pending.length > 0) {
      waitMs = settings.tenableStatusPollMinMs;
      continue;
    }
    // NOTE: an export stuck in QUEUED or PROCESSING is polled until the job
    // stops; no export timeout cancels it and requests a new one.
    await sleepMs(waitMs, context.signal, `tenable export ${run.uuid} status`);
    waitMs = Math.min(waitMs + stepMs, settings.tenableStatusPollMaxMs);
  }
}

async function* emitChunk(
  deps: SyncDeps,
  run: ExportRun,
  window: TenableWindow,
  chunkId: number,
): AsyncGenerator<AdapterBatch> {
  const { context } = deps;
  const findings = await downloadChunk(deps, run.uuid, chunkId);
  const observedAt = context.now().toISOString();
  const records = findings.map((finding) =>
    toTenableRecord(finding, context.source, observedAt),
  );
  const cursor = formatExportCursor(run.uuid, window, [...run.done, chunkId]);

  const size = Math.max(1, context.maxBatchRecords);
  const batchCount = Math.max(1, Math.ceil(records.length / size));
  for (let index = 0; index < batchCount; index++) {
    const last = index === batchCount - 1;
    yield {
      records: records.slice(index * size, (index + 1) * size),
      page: chunkId,
      endOfPage: last,
      ...(last ? { cursor } : {}),
    };
  }
  run.done.add(chunkId);
}

// Downloads and parses one chunk, downloading again when the body was cut
// or was not JSON (as pyTenable does). Type errors are not retried: the
// same bytes would come back.
async function downloadChunk(
  deps: SyncDeps,
  uuid: string,
  chunkId: number,
): Promise<TenableFinding[]> {
  const attempts = deps.settings.tenableChunkAttempts;
  for (let attempt = 1; ; attempt++) {
    try {
      const text = await deps.api.fetchChunk(uuid, chunkId);
      return parseTenableChunk(text, { exportUuid: uuid, chunkId });
    } catch (error) {
      if (!(error instanceof BodyReadError) || !error.retryable) throw error;
      if (attempt >= attempts) {
        throw new VulnsubError(
          "vendor_response_invalid",
          `tenable export ${uuid} chunk ${chunkId}: unreadable after ` +
            `${attempt} downloads: ${error.message}`,
          {
            cause: error,
            context: { vendor: "tenable", exportUuid: uuid, chunkId },
          },
        );
      }
      deps.logger.warn(
        {
          event: "chunk.unreadable",
          exportUuid: uuid,
          chunkId,
          attempt,
          ...errorFields(error),
        },
        `tenable export ${uuid} chunk ${chunkId}: unreadable, ` +
          "downloading again",
      );
    }
  }
}

function restartReason(error: unknown): string | null {
  if (error instanceof ExportFailedError) return "export failed";
  if (error instanceof VendorHttpError && error.status === 404) {
    return "export expired";
  }
  return null;
}

function logRestart(
  logger: Logger,
  uuid: string,
  reason: string,
  error: unknown,
) {
  if (reason === "export expired") {
    logger.warn(
      { event: "export.expired", exportUuid: uuid, ...errorFields(error) },
      `tenable export ${uuid} or one of its chunks expired; ` +
        "starting the window again with a new export",
    );
    return;
  }
  logger.error(
    { event: "export.failed", exportUuid: uuid, ...errorFields(error) },
    `tenable export ${uuid} failed; requesting the window again`,
  );
}
