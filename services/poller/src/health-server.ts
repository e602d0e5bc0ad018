import { Server, ServerCredentials } from "@grpc/grpc-js";
import {
  createReflectionService,
  parseHostPort,
  type HealthService,
} from "@vulnsub/shared";

export interface HealthServer {
  /** host:port with the real port. */
  readonly address: string;
  close(): Promise<void>;
}

/** Time open Watch calls get to end before the server cancels them. */
const CLOSE_TIMEOUT_MS = 2_000;

/**
 * Serves grpc.health.v1.Health and server reflection on `listen`, in
 * plaintext, so `grpcurl -plaintext ADDRESS list` and health probes work.
 * Meant for a loopback address. Rejects when the address cannot be bound.
 */
export async function startHealthServer(
  listen: string,
  health: HealthService,
): Promise<HealthServer> {
  const { host } = parseHostPort(listen);
  const server = new Server();
  server.addService(health.definition, health.implementation);
  for (const service of createReflectionService([]).services) {
    server.addService(service.definition, service.implementation);
  }

  const credentials = ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, credentials, (error, port) => {
      if (error) {
        server.forceShutdown();
        const reason = `health server cannot listen on ${listen}`;
        reject(new Error(`${reason}: ${error.message}`));
        return;
      }
      resolve(port);
    });
  });
  const shownHost = host.includes(":") ? `[${host}]` : host;

  return {
    address: `${shownHost}:${port}`,
    close: () => shutdown(server),
  };
}

function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, CLOSE_TIMEOUT_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
