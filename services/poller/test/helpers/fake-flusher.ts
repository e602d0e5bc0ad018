import * as grpc from "@grpc/grpc-js";
import {
  createGrpcServiceDefinition,
  ingestProto,
  jobId,
} from "@vulnsub/shared";

/**
 * An in-memory Ingest server on 127.0.0.1 over real gRPC, for poll loop
 * tests that need to hold, drop or reject acks. It keeps the flusher's
 * contract:
 * - records are deduplicated by (job, finding key, version);
 * - acks come in order, and a batch's cursor becomes durable with its ack;
 * - a batch or GetJobState with a fencing token older than the newest one
 *   fails with FAILED_PRECONDITION.
 */
export interface FakeFlusher {
  readonly address: string;
  /** Unique records appended, in order: "job|findingKey|version". */
  readonly log: string[];
  /** Batches received over all streams, in arrival order. */
  readonly received: ingestProto.PageBatch[];
  /** Largest number of received-but-unacked batches on one stream. */
  readonly maxUnacked: number;
  readonly streamsOpened: number;
  /** Durable cursor per job id. */
  cursorOf(job: string): string;
  /** Newest fencing token per job id. */
  tokenOf(job: string): bigint;
  setToken(job: string, token: bigint): void;
  /**
   * Kills every connection and serves again on the same port, keeping the
   * log, cursors and tokens, as a flusher restarted from disk would.
   */
  restart(): Promise<void>;
  /** While true, acks wait until releaseAcks() or holdAcks(false). */
  holdAcks(hold: boolean): void;
  /** Sends up to `count` held acks (all when omitted). */
  releaseAcks(count?: number): void;
  /**
   * After the stream's next `count` batches are appended, fails that
   * stream with UNAVAILABLE without acking them (acks lost in transit).
   */
  dropStreamAfter(count: number): void;
  /**
   * While true, every batch fails its stream with UNAVAILABLE, unwritten,
   * as a flusher whose log writes fail does.
   */
  rejectBatches(reject: boolean): void;
  stop(): Promise<void>;
}

export async function startFakeFlusher(port = 0): Promise<FakeFlusher> {
  const log: string[] = [];
  const seen = new Set<string>();
  const received: ingestProto.PageBatch[] = [];
  const cursors = new Map<string, string>();
  const tokens = new Map<string, bigint>();
  const held: (() => void)[] = [];
  let hold = false;
  let dropAfter: number | null = null;
  let rejecting = false;
  let maxUnacked = 0;
  let streamsOpened = 0;

  function append(batch: ingestProto.PageBatch) {
    const job = jobOf(batch.job);
    let written = 0;
    for (const record of batch.records) {
      const key = `${job}|${record.findingKey}|${record.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      log.push(key);
      written++;
    }
    return { written, duplicates: batch.records.length - written };
  }

  // The batch's cursor becomes durable when it is acked (or, for a dropped
  // stream, when its ack is lost), never on arrival.
  function commitCursor(batch: ingestProto.PageBatch): string {
    const job = jobOf(batch.job);
    if (batch.cursor !== "") cursors.set(job, batch.cursor);
    return cursors.get(job) ?? "";
  }

  const implementation = {
    getJobState(
      call: grpc.ServerUnaryCall<ingestProto.GetJobStateRequest, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) {
      const job = jobOf(call.request.job);
      const newest = tokens.get(job) ?? 0n;
      if (call.request.fencingToken !== 0n) {
        if (call.request.fencingToken < newest) {
          callback({
            code: grpc.status.FAILED_PRECONDITION,
            details: `fencing token ${call.request.fencingToken} is stale`,
          });
          return;
        }
        tokens.set(job, call.request.fencingToken);
      }
      callback(null, {
        cursor: cursors.get(job) ?? "",
        fencingToken: tokens.get(job) ?? 0n,
        writtenTotal: BigInt(log.length),
      });
    },

    stream(call: grpc.ServerDuplexStream<ingestProto.PageBatch, unknown>) {
      streamsOpened++;
      let unacked = 0;
      let dropIn = dropAfter;
      dropAfter = null;
      let failed = false;

      call.on("data", (batch: ingestProto.PageBatch) => {
        if (failed) return;
        received.push(batch);
        if (batch.fencingToken < (tokens.get(jobOf(batch.job)) ?? 0n)) {
          failed = true;
          call.emit("error", {
            code: grpc.status.FAILED_PRECONDITION,
            details: `fencing token ${batch.fencingToken} is stale`,
          });
          return;
        }
        if (rejecting) {
          failed = true;
          call.emit("error", {
            code: grpc.status.UNAVAILABLE,
            details: "findings log write failed: ENOSPC (test)",
          });
          return;
        }
        unacked++;
        maxUnacked = Math.max(maxUnacked, unacked);
        const result = append(batch);

        if (dropIn !== null && --dropIn <= 0) {
          commitCursor(batch);
          failed = true;
          call.emit("error", {
            code: grpc.status.UNAVAILABLE,
            details: "stream dropped by test",
          });
          return;
        }
        const ack = () => {
          if (failed) return;
          unacked--;
          call.write({
            seq: batch.seq,
            ...result,
            cursor: commitCursor(batch),
          });
        };
        if (hold) held.push(ack);
        else ack();
      });
      call.on("end", () => {
        if (!failed) call.end();
      });
      call.on("error", () => {
        failed = true;
      });
    },
  };

  function releaseAcks(count: number) {
    for (let i = 0; i < count && held.length > 0; i++) held.shift()?.();
  }

  let server = new grpc.Server();
  const boundPort = await serve(server, implementation, port);

  return {
    address: `127.0.0.1:${boundPort}`,
    log,
    received,
    get maxUnacked() {
      return maxUnacked;
    },
    get streamsOpened() {
      return streamsOpened;
    },
    cursorOf: (job) => cursors.get(job) ?? "",
    tokenOf: (job) => tokens.get(job) ?? 0n,
    setToken: (job, token) => tokens.set(job, token),
    holdAcks(value) {
      hold = value;
      if (!value) releaseAcks(Number.POSITIVE_INFINITY);
    },
    releaseAcks: (count = Number.POSITIVE_INFINITY) => releaseAcks(count),
    dropStreamAfter(count) {
      dropAfter = count;
    },
    rejectBatches(reject) {
      rejecting = reject;
    },
    async restart() {
      server.forceShutdown();
      server = new grpc.Server();
      await serve(server, implementation, boundPort);
    },
    async stop() {
      server.forceShutdown();
    },
  };
}

function serve(server: grpc.Server, implementation: object, port: number) {
  server.addService(
    createGrpcServiceDefinition(ingestProto.Ingest),
    implementation as grpc.UntypedServiceImplementation,
  );
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `127.0.0.1:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    );
  });
}

function jobOf(job: ingestProto.Job | undefined): string {
  return jobId({
    vendor: (job?.vendor ?? "") as "tenable",
    source: job?.source ?? "",
  });
}
