import type {
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  createRepeatLimiter,
  errorFields,
  jobId,
  parseJobRef,
  VulnsubError,
  type ingestProto,
  type Logger,
} from "@vulnsub/shared";
import type { BatchCommitter, BatchResult } from "./batch-committer.ts";
import { prepareBatch } from "./batch-validator.ts";
import type { FlusherMetrics } from "./flusher-metrics.ts";
import { statusName, toGrpcStatus } from "./grpc-status.ts";
import type { IncomingBatch } from "./page-batch-decoder.ts";

type PageBatch = IncomingBatch;
type Ack = Partial<ingestProto.Ack>;
type StreamCall = ServerDuplexStream<PageBatch, Ack>;

export interface IngestServiceOptions {
  /** Returns the committer once recovery is done, null before. */
  committer: () => BatchCommitter | null;
  maxRecordBytes: number;
  metrics: FlusherMetrics;
  logger: Logger;
}

export interface IngestService {
  implementation: UntypedServiceImplementation;
  /**
   * True when every open stream has a batch waiting for its ack, so a
   * group commit gains nothing by waiting for another stream's batch.
   */
  allStreamsWaiting(): boolean;
  /**
   * Stops taking batches, waits for the acks of those already taken, then
   * ends every open stream with UNAVAILABLE. Calls the flusher makes
   * after this are rejected the same way.
   */
  close(): Promise<void>;
}

// A stream that has this many batches waiting for their acks is paused
// until half of them are acked, so one poller cannot queue without bound.
// NOTE: the bound is per stream; many streams of MAX_MESSAGE_BYTES batches
// can still hold a large amount of memory between them.
const MAX_UNACKED_BATCHES = 64;

// While the log cannot be written every batch is rejected the same way,
// so stream.rejected and job_state.rejected are logged once per 30 s per
// event and gRPC code, with the count of those left out.
const REJECTED_LOG_INTERVAL_MS = 30_000;

type RepeatLimiter = ReturnType<typeof createRepeatLimiter>;

export function createIngestService(
  options: IngestServiceOptions,
): IngestService {
  const sessions = new Set<StreamSession>();
  const repeats = createRepeatLimiter(REJECTED_LOG_INTERVAL_MS);
  let closing = false;

  const unavailable = () =>
    closing
      ? new VulnsubError("flusher_unavailable", "flusher is shutting down")
      : new VulnsubError(
          "flusher_unavailable",
          "flusher is recovering the findings log; retry when its health " +
            "status is SERVING",
        );

  const stream = (call: StreamCall) => {
    const session = new StreamSession(call, options, repeats);
    if (closing || !options.committer()) {
      session.stop(unavailable());
      return;
    }
    sessions.add(session);
    void session.done.then(() => sessions.delete(session));
  };

  const getJobState = async (
    call: ServerUnaryCall<ingestProto.GetJobStateRequest, unknown>,
    callback: sendUnaryData<Partial<ingestProto.JobState>>,
  ) => {
    try {
      const committer = options.committer();
      if (closing || !committer) throw unavailable();
      const job = call.request.job;
      if (!job) throw new VulnsubError("job_invalid", "job: missing");
      const id = jobId(parseJobRef(job.vendor, job.source));
      const state = await committer.getJobState(id, call.request.fencingToken);
      callback(null, state);
    } catch (error) {
      const grpcStatus = toGrpcStatus(error);
      const code = statusName(grpcStatus.code);
      options.metrics.batchesRejected.inc({ code });
      warnRejected(repeats, options.logger, "job_state.rejected", code, {
        error,
        details: grpcStatus.details,
      });
      callback(grpcStatus);
    }
  };

  return {
    implementation: { stream, getJobState } as UntypedServiceImplementation,
    allStreamsWaiting() {
      for (const session of sessions) {
        if (!session.waiting) return false;
      }
      return true;
    },
    async close() {
      closing = true;
      await Promise.all(
        [...sessions].map((session) => session.stop(unavailable())),
      );
    },
  };
}

/** One Stream call: batches in, acks out in the same order. */
class StreamSession {
  readonly done: Promise<void>;
  #call: StreamCall;
  #options: IngestServiceOptions;
  #repeats: RepeatLimiter;
  #expectedSeq = 1n;
  #taking = true;
  #finished = false;
  #paused = false;
  #unacked = 0;
  #chain: Promise<void> = Promise.resolve();
  #markDone!: () => void;

  constructor(
    call: StreamCall,
    options: IngestServiceOptions,
    repeats: RepeatLimiter,
  ) {
    this.#call = call;
    this.#options = options;
    this.#repeats = repeats;
    this.done = new Promise((resolve) => {
      this.#markDone = resolve;
    });
    call.on("data", (batch: PageBatch) => this.#receive(batch));
    call.on("end", () => this.#then(() => this.#finish(null)));
    call.on("cancelled", () => this.#abandon());
    call.on("close", () => this.#abandon());
  }

  /** True while a batch of this stream waits for its ack. */
  get waiting(): boolean {
    return this.#unacked > 0;
  }

  /** Takes no more batches and ends the call with `error` after the
   * acks already owed. */
  stop(error: VulnsubError): Promise<void> {
    this.#taking = false;
    this.#then(() => this.#finish(error));
    return this.done;
  }

  #receive(batch: PageBatch): void {
    if (!this.#taking) return;
    const receivedMs = performance.now();
    // Counted before the submit, so the commit it schedules sees this
    // stream as waiting.
    this.#unacked++;
    let result: Promise<BatchResult>;
    try {
      const committer = this.#options.committer();
      if (!committer) throw new VulnsubError("flusher_unavailable", "flusher is not ready");
      const prepared = prepareBatch(
        batch,
        this.#expectedSeq,
        this.#options.maxRecordBytes,
      );
      this.#expectedSeq++;
      result = committer.submit(prepared);
    } catch (error) {
      this.#taking = false;
      result = Promise.reject(error);
    }
    // The chain handles the rejection; this only marks it as observed.
    result.catch(() => undefined);

    if (this.#unacked >= MAX_UNACKED_BATCHES && !this.#paused) {
      this.#paused = true;
      this.#call.pause();
    }
    this.#then(() => this.#deliver(result, receivedMs));
  }

  async #deliver(result: Promise<BatchResult>, receivedMs: number) {
    try {
      const ack = await result;
      if (this.#finished) return;
      this.#call.write({
        seq: ack.seq,
        written: ack.written,
        duplicates: ack.duplicates,
        cursor: ack.cursor,
      });
      this.#options.metrics.ackLatencySeconds.observe(
        (performance.now() - receivedMs) / 1000,
      );
    } catch (error) {
      this.#taking = false;
      this.#finish(error);
    } finally {
      this.#unacked--;
      if (this.#paused && this.#unacked <= MAX_UNACKED_BATCHES / 2) {
        this.#paused = false;
        this.#call.resume();
      }
    }
  }

  #then(step: () => void | Promise<void>): void {
    this.#chain = this.#chain.then(step);
  }

  #finish(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#taking = false;
    if (error === null) {
      this.#call.end();
    } else {
      const grpcStatus = toGrpcStatus(error);
      const code = statusName(grpcStatus.code);
      this.#options.metrics.batchesRejected.inc({ code });
      const { logger } = this.#options;
      warnRejected(this.#repeats, logger, "stream.rejected", code, {
        error,
        details: grpcStatus.details,
      });
      this.#call.emit("error", grpcStatus);
    }
    this.#markDone();
  }

  #abandon(): void {
    this.#taking = false;
    this.#finished = true;
    this.#markDone();
  }
}

/** Logs a rejection unless one with the same event and code was logged
 * in the last interval; the next line carries the count left out. */
function warnRejected(
  repeats: RepeatLimiter,
  logger: Logger,
  event: string,
  grpcCode: string,
  rejection: { error: unknown; details: string },
): void {
  const key = `${event} ${grpcCode}`;
  if (!repeats.allow(key)) return;
  logger.warn(
    {
      event,
      grpcCode,
      suppressed: repeats.takeSuppressed(key),
      ...errorFields(rejection.error),
    },
    rejection.details,
  );
}
