import type { Registry } from "prom-client";
import { parseHostPort } from "./config.ts";

/**
 * The body of GET /healthz. `healthy` decides the status code (200 or
 * 503), `reason` explains it in one line, and any other field is a
 * detail for the operator (phase, last cycle, last error).
 */
export interface HealthReport {
  healthy: boolean;
  reason: string;
  [detail: string]: unknown;
}

/**
 * A small HTTP server for Prometheus and probes: GET /metrics returns the
 * registry in the text exposition format, GET /healthz returns the health
 * report as JSON with status 200 when healthy and 503 otherwise. Meant for
 * a loopback address, because it has no authentication and no TLS.
 */
export interface MetricsServerOptions {
  /** host:port; port 0 picks a free port. */
  listen: string;
  registry: Registry;
  /**
   * Returns the health report, or only whether the process is healthy.
   * Defaults to always healthy.
   */
  healthz?: () =>
    | boolean
    | HealthReport
    | Promise<boolean | HealthReport>;
}

export interface MetricsServer {
  /** host:port with the real port. */
  readonly address: string;
  close(): Promise<void>;
}

export function startMetricsServer(
  options: MetricsServerOptions,
): MetricsServer {
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
        const report = toReport((await options.healthz?.()) ?? true);
        return Response.json(report, {
          status: report.healthy ? 200 : 503,
          headers: { "cache-control": "no-store" },
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

function toReport(value: boolean | HealthReport): HealthReport {
  if (typeof value !== "boolean") return value;
  return { healthy: value, reason: value ? "ok" : "not ready" };
}
