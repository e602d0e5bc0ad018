import { ServerCredentials, type Server } from "@grpc/grpc-js";
import {
  createReflectionService,
  ingestProto,
  parseHostPort,
  startMetricsServer,
  ServingStatus,
  type HealthService,
  type Logger,
  type MetricsServer,
} from "@vulnsub/shared";
import type { FlusherConfig } from "./config.ts";
import type { FlusherMetrics } from "./flusher-metrics.ts";

export interface FlusherEndpoints {
  /** gRPC address, host:port with the real port. */
  readonly address: string;
  readonly metricsAddress: string | null;
  /** Stops the gRPC server (forced after `timeoutMs`) and the metrics one. */
  close(timeoutMs: number): Promise<void>;
}

export interface FlusherEndpointsOptions {
  server: Server;
  health: HealthService;
  config: FlusherConfig;
  metrics: FlusherMetrics;
  logger: Logger;
}

/**
 * Adds health and reflection to the gRPC server, binds it, and starts the
 * metrics server. Logs `flusher.listening` with the real address.
 */
export async function startFlusherEndpoints(
  options: FlusherEndpointsOptions,
): Promise<FlusherEndpoints> {
  const { server, health, config, logger } = options;
  server.addService(health.definition, health.implementation);
  const reflection = createReflectionService([
    ingestProto.file_vulnsub_v1_ingest,
  ]);
  for (const service of reflection.services) {
    server.addService(service.definition, service.implementation);
  }

  const address = await bind(server, config.listen);
  logger.info(
    { event: "flusher.listening", address },
    "gRPC server listening; health NOT_SERVING until the log is recovered",
  );

  let metricsServer: MetricsServer | null = null;
  if (config.metricsListen !== "off") {
    metricsServer = startMetricsServer({
      listen: config.metricsListen,
      registry: options.metrics.registry,
      healthz: () => health.getStatus("") === ServingStatus.SERVING,
    });
    logger.info(
      { event: "metrics.listening", address: metricsServer.address },
      "metrics server listening",
    );
  }

  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    async close(timeoutMs) {
      await shutdownServer(server, timeoutMs, logger);
      await metricsServer?.close();
    },
  };
}

function bind(server: Server, listen: string): Promise<string> {
  const { host } = parseHostPort(listen);
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, ServerCredentials.createInsecure(), (error, port) => {
      if (error) {
        reject(new Error(`gRPC server cannot listen on ${listen}: ${error.message}`));
        return;
      }
      const shownHost = host.includes(":") ? `[${host}]` : host;
      resolve(`${shownHost}:${port}`);
    });
  });
}

/** Waits for open calls to end, then cancels those left after timeoutMs. */
async function shutdownServer(server: Server, timeoutMs: number, logger: Logger) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const graceful = new Promise<boolean>((resolve) => {
    server.tryShutdown(() => resolve(true));
  });
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const closed = await Promise.race([graceful, timedOut]);
  clearTimeout(timer);
  if (!closed) {
    logger.warn(
      { event: "server.shutdown_forced", timeoutMs },
      "gRPC calls still open after the shutdown timeout; cancelled them",
    );
    server.forceShutdown();
  }
}
