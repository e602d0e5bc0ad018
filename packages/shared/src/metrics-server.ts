import type { Registry } from "prom-client";
import { parseHostPort } from "./config.ts";

/**
 * A small HTTP server for Prometheus: GET /metrics returns the registry in
 * the text exposition format, GET /healthz returns 200 "ok" when `healthz`
 * returns true and 503 otherwise. Meant for a loopback address; it has no
 * authentication.
 */
export interface MetricsServerOptions {
  /** host:port; port 0 picks a free port. */
  listen: string;
  registry: Registry;
  /** Returns whether the process is healthy; defaults to always true. */
  healthz?: () => boolean | Promise<boolean>;
}

export interface MetricsServer {
  /** host:port with the real port. */
  readonly address: string;
  close(): Promise<void>;
}

export function startMetricsServer(options: MetricsServerOptions): MetricsServer {
  const { host, port } = parseHostPort(options.listen);
  const server = Bun.serve({
    hostname: host,
    port,
    fetch: async (request) => {
      const { pathname } = new URL(request.url);
      if (request.method !== "GET") {
        return new Response("method not allowed\n", { status: 405 });
      }
      if (pathname === "/metrics") {
        const body = await options.registry.metrics();
        return new Response(body, {
          headers: { "content-type": options.registry.contentType },
        });
      }
      if (pathname === "/healthz") {
        const healthy = (await options.healthz?.()) ?? true;
        return new Response(healthy ? "ok\n" : "not ready\n", {
          status: healthy ? 200 : 503,
        });
      }
      return new Response("not found: try /metrics or /healthz\n", {
        status: 404,
      });
    },
  });
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    address: `${shownHost}:${server.port}`,
    close: async () => {
      await server.stop(true);
    },
  };
}
