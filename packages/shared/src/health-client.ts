import {
  credentials as grpcCredentials,
  makeGenericClientConstructor,
  Metadata,
  type ChannelCredentials,
  type ChannelOptions,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "./gen/grpc/health/v1/health_pb.ts";
import { createGrpcServiceDefinition } from "./grpc-service.ts";

export interface HealthCheckOptions {
  /** Channel credentials; plaintext when omitted. */
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
  /** Deadline of the call; default 5000 ms. */
  deadlineMs?: number;
}

/** Status name as grpc.health.v1 spells it, e.g. "SERVING". */
export type ServingStatusName = keyof typeof ServingStatus;

const HealthClient = makeGenericClientConstructor(
  createGrpcServiceDefinition(Health),
  "Health",
);

/**
 * Calls grpc.health.v1.Health/Check on `address` for `service` ("" is the
 * whole server) and returns the status name. Rejects with the grpc-js
 * ServiceError, e.g. NOT_FOUND for an unknown service or UNAVAILABLE when
 * nothing listens.
 */
export function checkHealth(
  address: string,
  service = "",
  options: HealthCheckOptions = {},
): Promise<ServingStatusName> {
  const client = new HealthClient(
    address,
    options.credentials ?? grpcCredentials.createInsecure(),
    { "grpc.enable_http_proxy": 0, ...options.channelOptions },
  );
  const check = (client as unknown as Record<string, CheckMethod>).check;
  const deadline = new Date(Date.now() + (options.deadlineMs ?? 5_000));

  return new Promise<ServingStatusName>((resolve, reject) => {
    check?.call(
      client,
      { service },
      new Metadata(),
      { deadline },
      (error, response) => {
        client.close();
        if (error) {
          reject(error);
          return;
        }
        const status = response?.status ?? ServingStatus.UNKNOWN;
        resolve(ServingStatus[status] as ServingStatusName);
      },
    );
  });
}

type CheckMethod = (
  request: { service: string },
  metadata: Metadata,
  options: { deadline: Date },
  callback: (
    error: ServiceError | null,
    response?: Partial<HealthCheckResponse>,
  ) => void,
) => void;
