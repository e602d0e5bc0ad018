// Poller health while its Redis is down: a redis-server of the test's own
// is killed and started again on the same port.
import { afterEach, describe, expect, test } from "bun:test";
import { checkHealth } from "@vulnsub/shared";
import { SIMULATOR_CREDENTIALS, startSimulator } from "@vulnsub/simulators";
import { findFreePort } from "../../scripts/lib/ensure-redis.ts";
import {
  createWorkspace,
  eventsOf,
  fetchHealthz,
  isEvent,
  sampleValue,
  scrapeMetrics,
  startFlusher,
  startOwnRedis,
  startPoller,
  waitUntil,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;
const JOB_SERVICE = "vulnsub.poller.rapid7.default";

let workspace: Workspace;

afterEach(async () => {
  await workspace.cleanup();
});

describe("poller health and Redis", () => {
  test(
    "redis down is NOT_SERVING until it returns",
    async () => {
      workspace = createWorkspace();
      const redis = await startOwnRedis(workspace, await findFreePort());
      const simulator = await startSimulator("rapid7", {
        seed: 5,
        assets: 6,
        findingsPerAsset: 2,
        rateLimit: { requests: 1000, windowMs: 1000 },
      });
      workspace.defer(() => simulator.stop());
      const flusher = await startFlusher(workspace);
      const poller = await startPoller(workspace, {
        VENDOR: "rapid7",
        RAPID7_BASE_URL: simulator.url,
        ...SIMULATOR_CREDENTIALS.rapid7,
        FLUSHER_ADDRESS: flusher.address,
        REDIS_URL: redis.url,
        POLL_INTERVAL_MS: "600000",
      });
      await poller.process.waitForEvent(isEvent("cycle.completed"), 60_000);
      const before = await fetchHealthz(poller.metricsAddress);

      await redis.stop();
      await waitUntil(
        "/healthz 503",
        async () => (await fetchHealthz(poller.metricsAddress)).status === 503,
      );
      const down = await fetchHealthz(poller.metricsAddress);
      const grpcDown = await checkHealth(poller.healthAddress ?? "", JOB_SERVICE);
      const downText = await scrapeMetrics(poller.metricsAddress);

      await redis.start();
      await waitUntil(
        "/healthz 200 again",
        async () => (await fetchHealthz(poller.metricsAddress)).status === 200,
      );
      const grpcUp = await checkHealth(poller.healthAddress ?? "", JOB_SERVICE);
      const upText = await scrapeMetrics(poller.metricsAddress);

      expect(before.status).toBe(200);
      expect(down.body.healthy).toBe(false);
      expect(down.body.reason).toContain("redis not connected");
      expect((down.body.redis as { up: boolean }).up).toBe(false);
      expect(grpcDown).toBe("NOT_SERVING");
      expect(sampleValue(downText, "vulnsub_poller_redis_up")).toBe(0);
      expect(grpcUp).toBe("SERVING");
      expect(sampleValue(upText, "vulnsub_poller_redis_up")).toBe(1);
      expect(eventsOf(poller.process, "redis.disconnected").length).toBeGreaterThan(0);
      expect(eventsOf(poller.process, "redis.reconnected").length).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "health endpoints can be turned off",
    async () => {
      workspace = createWorkspace();
      const flusher = await startFlusher(workspace);
      const poller = await startPoller(workspace, {
        VENDOR: "rapid7",
        RAPID7_BASE_URL: "http://127.0.0.1:9",
        ...SIMULATOR_CREDENTIALS.rapid7,
        FLUSHER_ADDRESS: flusher.address,
        METRICS_LISTEN: "off",
        HEALTH_LISTEN: "off",
      });

      expect(poller.metricsAddress).toBeNull();
      expect(poller.healthAddress).toBeNull();
    },
    TEST_TIMEOUT_MS,
  );
});
