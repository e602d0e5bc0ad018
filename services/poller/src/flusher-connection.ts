import * as grpc from "@grpc/grpc-js";
import {
  AbortedError,
  VulnsubError,
  createIngestClient,
  ingestProto,
  type ClientTls,
  type JobRef,
} from "@vulnsub/shared";

/** The job's durable state as the flusher returned it. */
export interface FlusherJobState {
  /** Durable cursor, or null when the job has never committed a page. */
  cursor: string | null;
  /** Newest fencing token the flusher has seen for the job. */
  fencingToken: bigint;
  writtenTotal: bigint;
}

export interface OutgoingBatch {
  job: JobRef;
  fencingToken: bigint;
  seq: bigint;
  records: { findingKey: string; version: string; json: string }[];
  /** Empty string when the batch ends no page. */
  cursor: string;
}

export interface IncomingAck {
  seq: bigint;
  written: number;
  duplicates: number;
  /** Durable cursor after the batch; empty before the first. */
  cursor: string;
}

export interface IngestStreamHandlers {
  onAck(ack: IncomingAck): void;
  /**
   * Called once when the stream ends for any reason but `cancel`: with a
   * fencing_token_stale, batch_invalid or flusher_unavailable error, or
   * with null when the flusher ended the stream normally.
   */
  onClosed(error: VulnsubError | null): void;
}

export interface IngestStream {
  write(batch: OutgoingBatch): void;
  /** Drops the stream; onClosed is not called afterwards. */
  cancel(): void;
}

/** The poller's side of the Ingest service: one channel to the flusher. */
export interface FlusherClient {
  readonly address: string;
  getJobState(
    job: JobRef,
    fencingToken: bigint,
    signal?: AbortSignal,
  ): Promise<FlusherJobState>;
  openStream(handlers: IngestStreamHandlers): IngestStream;
  close(): void;
}

/** Timeout of one GetJobState call, in milliseconds. */
const GET_JOB_STATE_TIMEOUT_MS = 10_000;

// The channel retries a lost connection on its own. Short backoff bounds
// make a restarted flusher reachable again within about two seconds
// instead of grpc-js's default of up to two minutes.
// The HTTP proxy support of grpc-js is off, because it would route the
// channel through https_proxy or http_proxy, which are for vendor HTTP.
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2_000,
  "grpc.enable_http_proxy": 0,
};

/**
 * Creates a client for the flusher at `address` (host:port): plaintext
 * without `tls`, else TLS with its credentials and server name options.
 */
export function createFlusherClient(
  address: string,
  tls: ClientTls | null = null,
): FlusherClient {
  const client = createIngestClient(address, {
    credentials: tls?.credentials,
    channelOptions: { ...CHANNEL_OPTIONS, ...tls?.channelOptions },
  });

  async function getJobState(
    job: JobRef,
    fencingToken: bigint,
    signal?: AbortSignal,
  ): Promise<FlusherJobState> {
    const deadline = new Date(Date.now() + GET_JOB_STATE_TIMEOUT_MS);
    const call = client.getJobState({ job, fencingToken }, { deadline });
    let state: ingestProto.JobState;
    try {
      state = await untilAborted(call, signal);
    } catch (error) {
      if (error instanceof AbortedError) throw error;
      throw mapStatus(address, "GetJobState", error as grpc.ServiceError);
    }
    return {
      cursor: state.cursor === "" ? null : state.cursor,
      fencingToken: state.fencingToken,
      writtenTotal: state.writtenTotal,
    };
  }

  function openStream(handlers: IngestStreamHandlers): IngestStream {
    const call = client.stream();
    let closed = false;
    const close = (error: VulnsubError | null) => {
      if (closed) return;
      closed = true;
      handlers.onClosed(error);
    };

    call.on("data", (ack: ingestProto.Ack) => {
      if (closed) return;
      handlers.onAck({
        seq: ack.seq,
        written: ack.written,
        duplicates: ack.duplicates,
        cursor: ack.cursor,
      });
    });
    call.on("error", (error: grpc.ServiceError) => {
      close(mapStatus(address, "Stream", error));
    });
    call.on("end", () => close(null));

    return {
      write(batch) {
        if (!closed) call.write(batch);
      },
      cancel() {
        if (closed) return;
        closed = true;
        call.cancel();
      },
    };
  }

  return {
    address,
    getJobState,
    openStream,
    close: () => client.close(),
  };
}

// The call itself ends by its deadline; an abort only stops the wait.
function untilAborted<T>(
  promise: Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(new AbortedError("GetJobState", signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(new AbortedError("GetJobState", signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener("abort", onAbort);
    });
  });
}

/**
 * Maps a gRPC status to the poller's errors: FAILED_PRECONDITION means a
 * newer lock holder exists, INVALID_ARGUMENT a batch the flusher will never
 * take, and everything else a flusher that is down or restarting.
 */
export function mapStatus(
  address: string,
  method: string,
  error: grpc.ServiceError | null,
): VulnsubError {
  const code = error?.code ?? grpc.status.UNKNOWN;
  const details = error?.details || error?.message || "no details";
  const message = `flusher ${address} ${method}: ${grpc.status[code]}: ${details}`;
  if (code === grpc.status.FAILED_PRECONDITION) {
    return new VulnsubError("fencing_token_stale", message, { cause: error });
  }
  if (code === grpc.status.INVALID_ARGUMENT) {
    return new VulnsubError("batch_invalid", message, { cause: error });
  }
  return new VulnsubError("flusher_unavailable", message, { cause: error });
}
