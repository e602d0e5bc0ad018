// Metrics and health of a real flusher and poller during a sync against
// the Rapid7 simulator: counters move, a cycle with 0 findings stays
// healthy, failing cycles turn the job unhealthy (gRPC and /healthz) with
// the error code, and the job recovers once the vendor answers again.
import { afterEach, describe, expect, test } from "bun:test";
import { checkHealth } from "@vulnsub/shared";
import { SIMULATOR_CREDENTIALS, startSimulator } from "@vulnsub/simulators";
import {
  createWorkspace,
  eventsOf,
  fetchHealthz,
  isEvent,
  sampleValue,
  scrapeMetrics,
  startFlusher,
  startPoller,
  waitUntil,
  type RunningService,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;
const JOB = "rapid7:default";
const JOB_SERVICE = "vulnsub.poller.rapid7.default";
const rapid7 = { vendor: "rapid7", source: "default" };

let workspace: Workspace;

afterEach(async () => {
  await workspace.cleanup();
});

async function startStack(pollerEnv: Record<string, string> = {}) {
  workspace = createWorkspace();
  const simulator = await startSimulator("rapid7", {
    seed: 11,
    assets: 24,
    findingsPerAsset: 3,
    rateLimit: { requests: 1000, windowMs: 1000 },
  });
  workspace.defer(() => simulator.stop());
  const flusher = await startFlusher(workspace);
  const poller = await startPoller(workspace, {
    VENDOR: "rapid7",
    RAPID7_BASE_URL: simulator.url,
    ...SIMULATOR_CREDENTIALS.rapid7,
    RAPID7_PAGE_SIZE: "5",
    FLUSHER_ADDRESS: flusher.address,
    POLL_INTERVAL_MS: "1000",
    LOOKBACK_MS: "0",
    HEALTH_STALE_FACTOR: "3",
    REQUEST_MAX_ATTEMPTS: "1",
    ...pollerEnv,
  });
  return { simulator, flusher, poller };
}

function completedCycles(poller: RunningService) {
  // The poll loop's line; adapters log under area "adapter".
  return eventsOf(poller.process, "cycle.completed").filter(
    (event) => event.area === undefined,
  );
}

describe("metrics during a sync", () => {
  test(
    "poller and flusher counters move",
    async () => {
      const { flusher, poller } = await startStack();

      await poller.process.waitForEvent(
        isEvent("cycle.completed", (event) => event.area === undefined),
        60_000,
      );
      const first = completedCycles(poller)[0] ?? {};
      // The serving gauge follows the health check, which runs every second.
      await waitUntil("vulnsub_flusher_serving 1", async () => {
        const text = await scrapeMetrics(flusher.metricsAddress);
        return sampleValue(text, "vulnsub_flusher_serving") === 1;
      });
      const pollerText = await scrapeMetrics(poller.metricsAddress);
      const flusherText = await scrapeMetrics(flusher.metricsAddress);
      const written = Number(first.written);

      expect(written).toBeGreaterThan(0);
      const pollerSample = (name: string, labels: Record<string, string> = rapid7) =>
        sampleValue(pollerText, name, labels);
      expect(pollerSample("vulnsub_poller_pages_fetched_total")).toBeGreaterThan(1);
      expect(pollerSample("vulnsub_poller_findings_fetched_total")).toBeGreaterThanOrEqual(written);
      expect(pollerSample("vulnsub_poller_findings_written_total")).toBeGreaterThanOrEqual(written);
      expect(pollerSample("vulnsub_poller_vendor_requests_total", { ...rapid7, status: "200" })).toBeGreaterThan(0);
      expect(pollerSample("vulnsub_poller_ack_latency_seconds_count")).toBeGreaterThan(0);
      expect(pollerSample("vulnsub_poller_permit_wait_seconds_count")).toBeGreaterThan(0);
      expect(pollerSample("vulnsub_poller_cycles_completed_total")).toBeGreaterThanOrEqual(1);
      expect(pollerSample("vulnsub_poller_lock_held", { job: JOB })).toBe(1);
      expect(pollerSample("vulnsub_poller_last_successful_sync_timestamp_seconds", { job: JOB })).toBeGreaterThan(1_700_000_000);
      expect(pollerSample("vulnsub_poller_healthy", { job: JOB })).toBe(1);
      expect(pollerSample("vulnsub_poller_redis_up", {})).toBe(1);
      expect(pollerSample("vulnsub_poller_batches_in_flight")).toBe(0);
      expect(pollerText).toContain("# TYPE vulnsub_poller_vendor_pauses_total counter");
      expect(pollerText).toContain("# TYPE vulnsub_poller_takeovers_total counter");
      expect(pollerText).toContain("# TYPE vulnsub_poller_ratelimit_wait_seconds_total counter");

      const flusherSample = (name: string, labels: Record<string, string> = {}) =>
        sampleValue(flusherText, name, labels);
      expect(flusherSample("vulnsub_flusher_findings_written_total", rapid7)).toBeGreaterThanOrEqual(written);
      expect(flusherSample("vulnsub_flusher_dedup_keys")).toBeGreaterThanOrEqual(written);
      expect(flusherSample("vulnsub_flusher_log_bytes")).toBeGreaterThan(0);
      expect(flusherSample("vulnsub_flusher_fsync_duration_seconds_count")).toBeGreaterThan(0);
      expect(flusherSample("vulnsub_flusher_ack_latency_seconds_count")).toBeGreaterThan(0);
      expect(flusherSample("vulnsub_flusher_batches_in_flight")).toBe(0);
      expect(flusherSample("vulnsub_flusher_serving")).toBe(1);
      expect(flusherText).toContain("# TYPE vulnsub_flusher_findings_duplicate_total counter");
      expect(flusherText).toContain("process_resident_memory_bytes");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "cycle with 0 findings stays healthy",
    async () => {
      const { poller } = await startStack();

      await waitUntil(
        "a completed cycle with 0 findings",
        () => completedCycles(poller).some((event) => event.records === 0),
        60_000,
      );
      const healthz = await fetchHealthz(poller.metricsAddress);
      const text = await scrapeMetrics(poller.metricsAddress);
      const grpcStatus = await checkHealth(poller.healthAddress ?? "", JOB_SERVICE);

      expect(healthz.status).toBe(200);
      expect(healthz.body.healthy).toBe(true);
      expect(healthz.body.lastError).toBeNull();
      expect(grpcStatus).toBe("SERVING");
      expect(sampleValue(text, "vulnsub_poller_cycles_completed_total", rapid7)).toBeGreaterThanOrEqual(2);
      expect(sampleValue(text, "vulnsub_poller_cycle_failures_total", rapid7)).toBeUndefined();
      // The newest cycle may already be the next one; each found nothing new.
      expect(sampleValue(text, "vulnsub_poller_cycle_findings", { job: JOB })).toBe(0);
      expect((healthz.body.lastCycle as { records: number }).records).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "failing vendor turns the job unhealthy, then it recovers",
    async () => {
      const { simulator, poller } = await startStack();
      await poller.process.waitForEvent(
        isEvent("cycle.completed", (event) => event.area === undefined),
        60_000,
      );

      simulator.setFaults({ serverErrorRate: 1 });
      await waitUntil(
        "/healthz 503",
        async () => (await fetchHealthz(poller.metricsAddress)).status === 503,
        30_000,
      );
      const unhealthy = await fetchHealthz(poller.metricsAddress);
      const grpcJob = await checkHealth(poller.healthAddress ?? "", JOB_SERVICE);
      const grpcServer = await checkHealth(poller.healthAddress ?? "");
      const failingText = await scrapeMetrics(poller.metricsAddress);

      simulator.setFaults({ serverErrorRate: 0 });
      await waitUntil(
        "/healthz 200 again",
        async () => (await fetchHealthz(poller.metricsAddress)).status === 200,
        60_000,
      );
      const recovered = await fetchHealthz(poller.metricsAddress);
      const grpcRecovered = await checkHealth(poller.healthAddress ?? "", JOB_SERVICE);

      expect(unhealthy.body.healthy).toBe(false);
      expect(unhealthy.body.reason).toContain("no cycle completed for");
      expect(unhealthy.body.reason).toContain("vendor_request_failed");
      expect((unhealthy.body.lastError as { code: string }).code).toBe(
        "vendor_request_failed",
      );
      expect((unhealthy.body.lastError as { at: string }).at).toMatch(/^\d{4}-/);
      expect(grpcJob).toBe("NOT_SERVING");
      expect(grpcServer).toBe("NOT_SERVING");
      expect(
        sampleValue(failingText, "vulnsub_poller_cycle_failures_total", {
          ...rapid7,
          code: "vendor_request_failed",
        }),
      ).toBeGreaterThan(0);
      expect(sampleValue(failingText, "vulnsub_poller_healthy", { job: JOB })).toBe(0);
      expect(
        sampleValue(failingText, "vulnsub_poller_vendor_requests_total", {
          ...rapid7,
          status: "503",
        }),
      ).toBeGreaterThan(0);
      const changes = eventsOf(poller.process, "health.changed");
      expect(changes.some((event) => event.level === "error")).toBe(true);
      expect(changes.at(-1)?.healthy).toBe(true);
      expect(recovered.body.healthy).toBe(true);
      expect(recovered.body.lastError).toBeNull();
      expect(grpcRecovered).toBe("SERVING");
    },
    TEST_TIMEOUT_MS,
  );
});
