import {
  status as grpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "./gen/grpc/health/v1/health_pb.ts";
import { createGrpcServiceDefinition } from "./grpc-service.ts";

export { HealthCheckResponse_ServingStatus as ServingStatus } from "./gen/grpc/health/v1/health_pb.ts";

/**
 * The standard grpc.health.v1.Health service. The empty service name ""
 * stands for the whole server. Check returns NOT_FOUND for a service that
 * was never given a status; Watch sends SERVICE_UNKNOWN for it instead and
 * then every change, as the health protocol specifies.
 */
export interface HealthService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
  /** Sets a service's status and notifies its watchers when it changed. */
  setStatus(service: string, status: ServingStatus): void;
  /** Returns the status, or SERVICE_UNKNOWN for an unknown service. */
  getStatus(service: string): ServingStatus;
  /** Sets every service NOT_SERVING and ends all Watch calls. */
  close(): void;
}

type Watch = ServerWritableStream<HealthCheckRequest, Partial<HealthCheckResponse>>;

export function createHealthService(
  initial: Record<string, ServingStatus> = {},
): HealthService {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  const watchers = new Map<string, Set<Watch>>();

  const getStatus = (service: string) =>
    statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;

  const check = (
    call: ServerUnaryCall<HealthCheckRequest, unknown>,
    callback: sendUnaryData<Partial<HealthCheckResponse>>,
  ) => {
    const service = call.request.service;
    const status = statuses.get(service);
    if (status === undefined) {
      callback({
        code: grpcStatus.NOT_FOUND,
        details: `health: unknown service ${JSON.stringify(service)}`,
      });
      return;
    }
    callback(null, { status });
  };

  const watch = (call: Watch) => {
    const service = call.request.service;
    let set = watchers.get(service);
    if (!set) {
      set = new Set();
      watchers.set(service, set);
    }
    set.add(call);
    const forget = () => set.delete(call);
    call.on("cancelled", forget);
    call.on("close", forget);
    call.write({ status: getStatus(service) });
  };

  return {
    definition: createGrpcServiceDefinition(Health),
    implementation: { check, watch } as UntypedServiceImplementation,
    getStatus,
    setStatus(service, status) {
      const previous = statuses.get(service);
      statuses.set(service, status);
      if (previous === status) return;
      for (const call of watchers.get(service) ?? []) call.write({ status });
    },
    close() {
      for (const service of statuses.keys()) {
        this.setStatus(service, ServingStatus.NOT_SERVING);
      }
      for (const set of watchers.values()) {
        for (const call of set) call.end();
        set.clear();
      }
    },
  };
}
