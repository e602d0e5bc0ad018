import { afterEach, describe, expect, test } from "bun:test";
import { Counter, Registry } from "prom-client";
import {
  startMetricsServer,
  type HealthReport,
  type MetricsServer,
} from "../src/metrics-server.ts";

let server: MetricsServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

function start(healthz?: () => boolean | HealthReport) {
  const registry = new Registry();
  const counter = new Counter({
    name: "vulnsub_test_events_total",
    help: "Events seen by the test.",
    registers: [registry],
  });
  counter.inc(3);
  server = startMetricsServer({ listen: "127.0.0.1:0", registry, healthz });
  return `http://${server.address}`;
}

describe("startMetricsServer", () => {
  test("/metrics serves the registry", async () => {
    const base = start();

    const response = await fetch(`${base}/metrics`);

    expect(response.status).toBe(200);
    expect(await response.text()).toContain("vulnsub_test_events_total 3");
  });

  test("/healthz returns the report as JSON", async () => {
    const base = start(() => ({
      healthy: false,
      reason: "redis not connected",
      phase: "waiting",
    }));

    const response = await fetch(`${base}/healthz`);

    expect(response.status).toBe(503);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toEqual({
      healthy: false,
      reason: "redis not connected",
      phase: "waiting",
    });
  });

  test("/healthz accepts a boolean", async () => {
    const base = start(() => true);

    const response = await fetch(`${base}/healthz`);

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ healthy: true, reason: "ok" });
  });

  test("other paths and methods are rejected", async () => {
    const base = start();

    const missing = await fetch(`${base}/nope`);
    const posted = await fetch(`${base}/metrics`, { method: "POST" });

    expect(missing.status).toBe(404);
    expect(posted.status).toBe(405);
  });
});
