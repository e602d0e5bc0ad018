import {
  AbortedError,
  VulnsubError,
  createRepeatLimiter,
  errorFields,
  type JobRef,
  type Logger,
} from "@vulnsub/shared";
import type { AdapterBatch } from "./adapter.ts";
import type {
  FlusherClient,
  FlusherJobState,
  IncomingAck,
  IngestStream,
} from "./flusher-connection.ts";
import { sleepMs } from "./vendor-http-body.ts";

/**
 * Streams adapter batches to the flusher for one lock tenure.
 *
 * Invariants:
 * - At most `maxUnackedBatches` batches are sent and not yet acked; `send`
 *   waits for room, which back-pressures the adapter.
 * - Acks arrive in send order. `durableCursor` moves only on an ack (or on
 *   the cursor GetJobState returns), so it never runs ahead of the log.
 * - Sequence numbers start at 1 on every stream.
 * - After a stream error the sender reconnects: GetJobState with its
 *   fencing token, then a new stream. It re-sends every unacked batch in
 *   order, and the flusher drops the records it already has.
 * - Reconnects back off exponentially with jitter up to
 *   `reconnectMaxMs`. The failure count resets only on an ack, not on a
 *   connect, so a flusher that takes the stream and then rejects every
 *   batch is retried ever more slowly instead of in a tight loop.
 * - A newer fencing token (FAILED_PRECONDITION, or a newer token from
 *   GetJobState) fails the sender with lock_lost. An aborted `signal`
 *   fails it with aborted. Unacked batches are then dropped, unsent.
 */
export interface BatchSender {
  /** Cursor of the newest acked batch, or the flusher's stored cursor. */
  readonly durableCursor: string | null;
  /** Batches sent and not yet acked. */
  readonly unacked: number;
  /** True once the sender failed or was closed; it sends nothing more. */
  readonly failed: boolean;
  /** Fencing token sent with every batch (it grows after a refresh). */
  readonly fencingToken: bigint;
  /**
   * Connects to the flusher, registers the fencing token and returns the
   * job state. Retries with backoff until the flusher responds.
   */
  connect(): Promise<FlusherJobState>;
  /** Queues a batch once the window has room; `tally` counts its ack. */
  send(batch: AdapterBatch, tally: AckTally): Promise<void>;
  /** Resolves when every queued batch is acked. */
  drain(): Promise<void>;
  close(): void;
}

/** Per-cycle totals that acks add to. */
export interface AckTally {
  written: number;
  duplicates: number;
}

export interface BatchSenderOptions {
  client: FlusherClient;
  job: JobRef;
  fencingToken: bigint;
  maxUnackedBatches: number;
  logger: Logger;
  /** Fires on lock loss or forced stop; unacked batches are dropped. */
  signal: AbortSignal;
  /**
   * The job lock's signal, read right before every write: the shared job
   * lock checks its refresh deadline when `aborted` is read.
   */
  lockSignal?: AbortSignal;
  /**
   * Takes a fencing token above `floor` while the lock is still held. Used
   * once, on the first connect, when the flusher stores a newer token
   * than Redis issued (Redis lost its data). Later, a newer token means
   * another holder and fails the sender with lock_lost.
   */
  refreshFencingToken?(floor: bigint): Promise<bigint>;
  /** First reconnect delay, doubled per failure since an ack (200 ms). */
  reconnectBaseMs?: number;
  /** Cap of the reconnect delay (5000 ms). */
  reconnectMaxMs?: number;
  /** Time without an ack, while batches wait, before reconnecting (60 s). */
  ackTimeoutMs?: number;
  /** Called per ack with the time since the batch was last written. */
  onAck?(ack: IncomingAck, latencyMs: number): void;
  onUnackedChanged?(unacked: number): void;
}

export function createBatchSender(options: BatchSenderOptions): BatchSender {
  const reconnectBaseMs = options.reconnectBaseMs ?? 200;
  const reconnectMaxMs = options.reconnectMaxMs ?? 5_000;
  const ackTimeoutMs = options.ackTimeoutMs ?? 60_000;
  const { client, job, logger } = options;
  let fencingToken = options.fencingToken;
  let connectedOnce = false;
  // Aborts on lock loss, forced stop or close, ending every wait at once.
  const closeController = new AbortController();
  const signal = AbortSignal.any([options.signal, closeController.signal]);
  const warnings = createRepeatLimiter(30_000);
  // Failed connects and streams since the last ack, which set the backoff.
  let failures = 0;

  const pending: PendingBatch[] = [];
  let stream: IngestStream | null = null;
  let streamSeq = 0n;
  let durableCursor: string | null = null;
  let failure: VulnsubError | null = null;
  let reconnecting = false;
  let closed = false;
  let ackTimer: ReturnType<typeof setTimeout> | undefined;
  let waiters: (() => void)[] = [];

  const onAbort = () =>
    fail(new AbortedError(`${job.vendor}:${job.source} stream`, signal.reason));
  options.signal.addEventListener("abort", onAbort, { once: true });
  if (options.signal.aborted) onAbort();

  async function connect(): Promise<FlusherJobState> {
    for (;;) {
      throwIfFailed();
      try {
        return await connectOnce();
      } catch (error) {
        if (isFatal(error)) {
          fail(error as VulnsubError);
          throw error;
        }
        failures++;
        warnUnavailable(error);
        await backOff();
      }
    }
  }

  function backOff(): Promise<void> {
    return sleepMs(backoffMs(failures), signal, "flusher reconnect").catch(
      () => undefined,
    );
  }

  async function connectOnce(): Promise<FlusherJobState> {
    const state = await registerToken();
    if (state.fencingToken > fencingToken) {
      throw lockLost(`flusher has newer fencing token ${state.fencingToken}`);
    }
    throwIfFailed();
    connectedOnce = true;
    if (state.cursor !== null) durableCursor = state.cursor;

    stream = client.openStream({ onAck: handleAck, onClosed: handleClosed });
    streamSeq = 0n;
    for (const entry of pending) writeEntry(entry);
    armAckTimer();
    logger.info(
      {
        event: "flusher.connected",
        address: client.address,
        attempt: failures,
        cursor: durableCursor,
        resent: pending.length,
      },
      `connected to flusher ${client.address}`,
    );
    return state;
  }

  // GetJobState with our token. A stale token on the first connect, while
  // the lock is held, means Redis issued tokens again from a lower value.
  async function registerToken(): Promise<FlusherJobState> {
    try {
      return await client.getJobState(job, fencingToken, signal);
    } catch (error) {
      const stale = (error as VulnsubError).code === "fencing_token_stale";
      if (!stale || connectedOnce || !options.refreshFencingToken) {
        throw stale ? lockLost((error as Error).message) : error;
      }
    }

    const current = await client.getJobState(job, 0n, signal);
    const previous = fencingToken;
    fencingToken = await options.refreshFencingToken(current.fencingToken);
    logger.warn(
      {
        event: "fencing.refreshed",
        fencingToken: String(fencingToken),
        previousToken: String(previous),
        flusherToken: String(current.fencingToken),
      },
      `flusher stores fencing token ${current.fencingToken}, above ours ` +
        `(${previous}): Redis lost its data; took token ${fencingToken}`,
    );
    return await client.getJobState(job, fencingToken, signal);
  }

  async function send(batch: AdapterBatch, tally: AckTally): Promise<void> {
    await waitFor(() => pending.length < options.maxUnackedBatches);
    const entry: PendingBatch = {
      seq: 0n,
      writtenAtMs: 0,
      records: batch.records,
      cursor: batch.cursor ?? "",
      tally,
    };
    pending.push(entry);
    options.onUnackedChanged?.(pending.length);
    if (stream) writeEntry(entry);
    throwIfFailed();
    armAckTimer();
  }

  function writeEntry(entry: PendingBatch) {
    if (options.lockSignal?.aborted) {
      fail(lockLost("job lock lost before a send"));
      return;
    }
    streamSeq += 1n;
    entry.seq = streamSeq;
    entry.writtenAtMs = performance.now();
    stream?.write({
      job,
      fencingToken,
      seq: entry.seq,
      records: entry.records,
      cursor: entry.cursor,
    });
  }

  function handleAck(ack: IncomingAck) {
    const head = pending[0];
    if (!head || head.seq !== ack.seq) {
      const expected = head ? String(head.seq) : "none";
      restartStream(
        new VulnsubError(
          "flusher_unavailable",
          `flusher ${client.address}: ack seq ${ack.seq}, expected ${expected}`,
        ),
      );
      return;
    }

    pending.shift();
    failures = 0;
    head.tally.written += ack.written;
    head.tally.duplicates += ack.duplicates;
    if (ack.cursor !== "") durableCursor = ack.cursor;
    logger.info(
      {
        event: "batch.acked",
        seq: Number(ack.seq),
        records: head.records.length,
        written: ack.written,
        duplicates: ack.duplicates,
        cursor: durableCursor,
      },
      `batch ${ack.seq} acked`,
    );
    options.onAck?.(ack, performance.now() - head.writtenAtMs);
    options.onUnackedChanged?.(pending.length);
    armAckTimer();
    notify();
  }

  function handleClosed(error: VulnsubError | null) {
    stream = null;
    if (error && isFatal(error)) {
      fail(error);
      return;
    }
    restartStream(
      error ??
        new VulnsubError(
          "flusher_unavailable",
          `flusher ${client.address}: stream ended by the server`,
        ),
    );
  }

  // Drops the current stream and reconnects in the background after the
  // backoff; unacked batches are re-sent by connectOnce.
  function restartStream(reason: VulnsubError) {
    stream?.cancel();
    stream = null;
    clearTimeout(ackTimer);
    if (failure || closed || reconnecting) return;

    failures++;
    warnUnavailable(reason);
    reconnecting = true;
    backOff()
      .then(connect)
      .catch(() => undefined)
      .finally(() => {
        reconnecting = false;
      });
  }

  function armAckTimer() {
    clearTimeout(ackTimer);
    if (pending.length === 0 || !stream) return;
    ackTimer = setTimeout(() => {
      restartStream(
        new VulnsubError(
          "flusher_unavailable",
          `flusher ${client.address}: no ack within ${ackTimeoutMs} ms`,
        ),
      );
    }, ackTimeoutMs);
  }

  function fail(error: VulnsubError) {
    if (failure) return;
    failure = error;
    shutdown();
  }

  function shutdown() {
    clearTimeout(ackTimer);
    stream?.cancel();
    stream = null;
    options.signal.removeEventListener("abort", onAbort);
    closeController.abort();
    notify();
  }

  function throwIfFailed() {
    if (failure) throw failure;
    if (closed) throw new AbortedError("batch sender closed");
  }

  async function waitFor(condition: () => boolean): Promise<void> {
    for (;;) {
      throwIfFailed();
      if (condition()) return;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  }

  function notify() {
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
  }

  // One line per 30 s; `suppressed` counts the ones left out since.
  function warnUnavailable(error: unknown) {
    if (!warnings.allow("unavailable")) return;
    logger.warn(
      {
        event: "flusher.unavailable",
        address: client.address,
        attempt: failures,
        unacked: pending.length,
        suppressed: warnings.takeSuppressed("unavailable"),
        ...errorFields(error),
      },
      `flusher ${client.address} unavailable, reconnecting`,
    );
  }

  function backoffMs(attempt: number): number {
    const capped = Math.min(
      reconnectMaxMs,
      reconnectBaseMs * 2 ** Math.min(attempt - 1, 20),
    );
    return Math.round(capped / 2 + (Math.random() * capped) / 2);
  }

  function lockLost(reason: string) {
    return new VulnsubError(
      "lock_lost",
      `${job.vendor}:${job.source} fencing token ${fencingToken}: ${reason}`,
    );
  }

  return {
    get durableCursor() {
      return durableCursor;
    },
    get unacked() {
      return pending.length;
    },
    get failed() {
      return failure !== null || closed;
    },
    get fencingToken() {
      return fencingToken;
    },
    connect,
    send,
    drain: () => waitFor(() => pending.length === 0),
    close() {
      if (closed) return;
      closed = true;
      shutdown();
    },
  };
}

interface PendingBatch {
  /** Sequence number on the current stream; 0 until written. */
  seq: bigint;
  /** performance.now() of the newest write to a stream. */
  writtenAtMs: number;
  records: AdapterBatch["records"];
  cursor: string;
  tally: AckTally;
}

function isFatal(error: unknown): boolean {
  if (!(error instanceof VulnsubError)) return false;
  return (
    error.code === "fencing_token_stale" ||
    error.code === "lock_lost" ||
    error.code === "batch_invalid" ||
    error.code === "aborted"
  );
}
