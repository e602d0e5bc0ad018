import type { Http2Server, Http2Session } from "node:http2";
import type { Server, ServerCredentials } from "@grpc/grpc-js";
import {
  createReflectionService,
  ingestProto,
  parseHostPort,
  startMetricsServer,
  type HealthService,
  type Logger,
  type MetricsServer,
} from "@vulnsub/shared";
import type { FlusherConfig } from "./config.ts";
import type { FlusherMetrics } from "./flusher-metrics.ts";
import { createFlusherHealthz } from "./flusher-healthz.ts";
import { createFlusherCredentials, flusherTlsMode } from "./flusher-tls.ts";
import type { JournalFailure, JournalStatus } from "./journal-writer.ts";

export interface FlusherEndpoints {
  /** gRPC address, host:port with the real port. */
  readonly address: string;
  readonly metricsAddress: string | null;
  /** Brings the gRPC health in line with the findings log now. */
  refreshHealth(): void;
  /** Stops the gRPC server (forced after `timeoutMs`) and the metrics one. */
  close(timeoutMs: number): Promise<void>;
}

export interface FlusherEndpointsOptions {
  server: Server;
  health: HealthService;
  config: FlusherConfig;
  metrics: FlusherMetrics;
  logger: Logger;
  /** Status of the findings log writer; null until recovery is done. */
  journalStatus?: () => JournalStatus | null;
  /** The newest failed group commit, null once a later one succeeded. */
  journalFailure?: () => JournalFailure | null;
  /** True once the flusher is stopping. */
  stopping?: () => boolean;
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

  const tls = flusherTlsMode(config);
  const credentials = createFlusherCredentials(config);
  const address = await bind(server, config.listen, credentials);
  widenReceiveWindow(server, Math.min(config.maxMessageBytes, RECEIVE_WINDOW_BYTES));
  logger.info(
    { event: "flusher.listening", address, tls },
    "gRPC server listening; health NOT_SERVING until the log is recovered",
  );
  const healthz = createFlusherHealthz({
    health,
    metrics: options.metrics,
    logger,
    journalStatus: options.journalStatus ?? (() => null),
    ...(options.journalFailure
      ? { journalFailure: options.journalFailure }
      : {}),
    ...(options.stopping ? { stopping: options.stopping } : {}),
  });

  let metricsServer: MetricsServer | null = null;
  if (config.metricsListen !== "off") {
    metricsServer = startMetricsServer({
      listen: config.metricsListen,
      registry: options.metrics.registry,
      healthz: healthz.report,
    });
    logger.info(
      { event: "metrics.listening", address: metricsServer.address },
      "metrics server listening",
    );
  }

  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    refreshHealth: healthz.refresh,
    async close(timeoutMs) {
      healthz.close();
      await shutdownServer(server, timeoutMs, logger);
      await metricsServer?.close();
    },
  };
}

// HTTP/2 receive window per stream and per connection. With the default
// of 64 KiB a poller sending MB-sized batches waits for a window update
// every 64 KiB; 8 MiB raised loopback throughput by about 40 % in a test
// with 1.5 MB batches (Bun 1.4, grpc-js 1.14).
const RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Raises the HTTP/2 receive window of every new connection. grpc-js has
 * no server option for it, so this reaches its internal list of HTTP/2
 * servers and does nothing when that list is not there.
 */
function widenReceiveWindow(server: Server, bytes: number): void {
  // NOTE: `http2Servers` is a private field of grpc-js 1.14; a later
  // version may rename it, which silently brings back the 64 KiB window.
  const internal = server as unknown as { http2Servers?: unknown };
  if (!(internal.http2Servers instanceof Map)) return;
  for (const http2Server of internal.http2Servers.keys()) {
    (http2Server as Http2Server).on("session", (session: Http2Session) => {
      session.setLocalWindowSize(bytes);
      session.settings({ initialWindowSize: bytes });
    });
  }
}

function bind(
  server: Server,
  listen: string,
  credentials: ServerCredentials,
): Promise<string> {
  const { host } = parseHostPort(listen);
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, credentials, (error, port) => {
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
