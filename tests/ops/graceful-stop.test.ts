// SIGTERM of a real poller against the Rapid7 simulator. The page in
// flight is finished and acked, the cursor is durable in the flusher, the
// lock is released and the exit code is 0. Acks that never arrive are
// given up after SHUTDOWN_GRACE_MS.
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  SIMULATOR_CREDENTIALS,
  startSimulator,
  type SimulatorHandle,
} from "@vulnsub/simulators";
import {
  createWorkspace,
  eventsOf,
  isEvent,
  spawnPollerProcess,
  startFlusher,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;

let workspace: Workspace;

afterEach(async () => {
  await workspace.cleanup();
});

async function startWorld() {
  workspace = createWorkspace();
  const simulator = await startSimulator("rapid7", {
    seed: 21,
    assets: 30,
    findingsPerAsset: 2,
    rateLimit: { requests: 1000, windowMs: 1000 },
  });
  workspace.defer(() => simulator.stop());
  const flusher = await startFlusher(workspace);
  const env = (extra: Record<string, string>) => ({
    VENDOR: "rapid7",
    RAPID7_BASE_URL: simulator.url,
    ...SIMULATOR_CREDENTIALS.rapid7,
    RAPID7_PAGE_SIZE: "3",
    FLUSHER_ADDRESS: flusher.address,
    ...extra,
  });
  return { simulator, env };
}

function logKeys(): string[] {
  const path = join(workspace.dir, "data", "vulnerabilities.jsonl");
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const record = JSON.parse(line) as { findingKey: string; version: string };
      return `${record.findingKey}|${record.version}`;
    });
}

function truthKeys(simulator: SimulatorHandle): string[] {
  const keys = simulator
    .groundTruth()
    .map((item) => `${item.findingKey}|${item.version}`);
  return [...new Set(keys)].sort();
}

describe("graceful stop", () => {
  test(
    "SIGTERM saves the cursor and exits 0",
    async () => {
      const { simulator, env } = await startWorld();
      // 200 ms per page keeps the cycle running when SIGTERM arrives.
      simulator.setFaults({ slowRate: 1, slowMs: 200 });
      const first = spawnPollerProcess(workspace, env({}));
      await first.process.waitForEvent(
        isEvent("page.fetched", (event) => Number(event.page) >= 2),
        60_000,
      );

      first.process.signal("SIGTERM");
      const exit = await first.process.exited;
      const lastAck = eventsOf(first.process, "batch.acked").at(-1);
      simulator.setFaults({ slowRate: 0 });
      const second = spawnPollerProcess(workspace, env({ ONCE: "true" }));
      const secondExit = await second.process.exited;

      expect(exit.code).toBe(0);
      expect(eventsOf(first.process, "poller.stopping").length).toBe(1);
      expect(eventsOf(first.process, "poller.stop_timed_out").length).toBe(0);
      expect(eventsOf(first.process, "lock.released").length).toBe(1);
      expect(eventsOf(first.process, "poller.stopped").length).toBe(1);
      expect(eventsOf(first.process, "cycle.completed").length).toBe(0);
      expect(typeof lastAck?.cursor).toBe("string");
      const resumed = eventsOf(second.process, "flusher.connected")[0];
      expect(resumed?.cursor).toBe(lastAck?.cursor);
      expect(secondExit.code).toBe(0);
      const keys = logKeys();
      expect(new Set(keys).size).toBe(keys.length);
      expect([...keys].sort()).toEqual(truthKeys(simulator));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "stop waits at most SHUTDOWN_GRACE_MS for acks",
    async () => {
      workspace = createWorkspace();
      const simulator = await startSimulator("rapid7", {
        seed: 21,
        assets: 30,
        findingsPerAsset: 2,
        rateLimit: { requests: 1000, windowMs: 1000 },
      });
      workspace.defer(() => simulator.stop());
      // The first page takes 500 ms, so the flusher is stopped (SIGSTOP)
      // before any batch can reach it, and no ack ever arrives.
      simulator.setFaults({ slowRate: 1, slowMs: 500 });
      const flusher = await startFlusher(workspace);
      workspace.defer(() => flusher.process.signal("SIGCONT"));
      const poller = spawnPollerProcess(workspace, {
        VENDOR: "rapid7",
        RAPID7_BASE_URL: simulator.url,
        ...SIMULATOR_CREDENTIALS.rapid7,
        RAPID7_PAGE_SIZE: "3",
        FLUSHER_ADDRESS: flusher.address,
        SHUTDOWN_GRACE_MS: "1500",
      });
      await poller.process.waitForEvent(isEvent("flusher.connected"), 60_000);
      flusher.process.signal("SIGSTOP");
      await poller.process.waitForEvent(isEvent("page.fetched"), 60_000);

      poller.process.signal("SIGTERM");
      const exit = await poller.process.exited;

      expect(exit.code).toBe(0);
      expect(eventsOf(poller.process, "batch.acked").length).toBe(0);
      const timedOut = eventsOf(poller.process, "poller.stop_timed_out");
      expect(timedOut.length).toBe(1);
      expect(timedOut[0]?.level).toBe("warn");
      expect(eventsOf(poller.process, "lock.released").length).toBe(1);
      expect(eventsOf(poller.process, "poller.stopped").length).toBe(1);
      flusher.process.signal("SIGCONT");
    },
    TEST_TIMEOUT_MS,
  );
});
