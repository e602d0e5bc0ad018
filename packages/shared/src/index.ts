// Public surface of @vulnsub/shared: what the poller, the flusher, the
// simulators and the scripts may import.
export * from "./config.ts";
export * from "./errors.ts";
export * from "./finding.ts";
export * from "./grpc-service.ts";
export * from "./job.ts";
export * from "./logger.ts";
export * from "./redis-keys.ts";
export * from "./retry-after.ts";
export * from "./backoff.ts";
export * from "./fencing.ts";
export * from "./job-lock.ts";
export * from "./pause-gate.ts";
export * from "./rate-limiter.ts";
export * from "./redis-client.ts";
export * from "./semaphore.ts";
export * from "./vendor-gate.ts";
export * as ingestProto from "./gen/vulnsub/v1/ingest_pb.ts";
export * as healthProto from "./gen/grpc/health/v1/health_pb.ts";
export * from "./health-service.ts";
export * from "./metrics-server.ts";
export * from "./reflection-service.ts";
export * from "./ingest-client.ts";
export * from "./grpc-tls.ts";
export * from "./health-client.ts";
