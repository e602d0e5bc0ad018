import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  credentials as grpcCredentials,
  makeGenericClientConstructor,
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  Ingest,
  type Ack,
  type GetJobStateRequestSchema,
  type JobState,
  type PageBatchSchema,
} from "./gen/vulnsub/v1/ingest_pb.ts";
import { createGrpcServiceDefinition } from "./grpc-service.ts";
import { encodePageBatch } from "./page-batch-encoder.ts";

export type PageBatchInit = MessageInitShape<typeof PageBatchSchema>;
export type GetJobStateRequestInit = MessageInitShape<
  typeof GetJobStateRequestSchema
>;

export interface IngestClientOptions {
  /** Channel credentials; insecure (plaintext) when omitted. */
  credentials?: ChannelCredentials;
  /** Max message size sent and received; default 64 MiB like the flusher. */
  maxMessageBytes?: number;
  /** Extra grpc-js channel options, applied last. */
  channelOptions?: ChannelOptions;
}

/** A typed client of vulnsub.v1.Ingest. */
export interface IngestClient {
  /** Opens a Stream call: write PageBatch, read Ack in the same order. */
  stream(options?: CallOptions): ClientDuplexStream<PageBatchInit, Ack>;
  /** Calls GetJobState; rejects with the grpc-js ServiceError. */
  getJobState(
    request: GetJobStateRequestInit,
    options?: CallOptions,
  ): Promise<JobState>;
  /** Resolves when the channel is connected, rejects after deadlineMs. */
  waitForReady(deadlineMs: number): Promise<void>;
  close(): void;
  /** The underlying grpc-js client. */
  readonly client: Client;
}

const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const IngestClientConstructor = makeGenericClientConstructor(
  createGrpcServiceDefinition(Ingest, { encode: { stream: encodePageBatch } }),
  "Ingest",
);

/**
 * Creates a client of the flusher at `address` (host:port). Pass
 * `credentials` for TLS; the default is a plaintext channel for loopback.
 */
export function createIngestClient(
  address: string,
  options: IngestClientOptions = {},
): IngestClient {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const client = new IngestClientConstructor(
    address,
    options.credentials ?? grpcCredentials.createInsecure(),
    {
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      ...options.channelOptions,
    },
  );
  const raw = client as unknown as Record<string, (...args: unknown[]) => unknown>;

  return {
    client,
    stream(callOptions) {
      const call = raw.stream?.call(client, new Metadata(), callOptions ?? {});
      return call as ClientDuplexStream<PageBatchInit, Ack>;
    },
    getJobState(request, callOptions) {
      return new Promise((resolve, reject) => {
        raw.getJobState?.call(
          client,
          request,
          new Metadata(),
          callOptions ?? {},
          (error: ServiceError | null, response?: JobState) => {
            if (error) reject(error);
            else resolve(response as JobState);
          },
        );
      });
    },
    waitForReady(deadlineMs) {
      return new Promise((resolve, reject) => {
        client.waitForReady(Date.now() + deadlineMs, (error) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
    close: () => client.close(),
  };
}
