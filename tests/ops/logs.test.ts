// Log lines of a real poller and flusher: one JSON object per line with a
// dotted event name and the shared job fields, debug only for the areas
// LOG_DEBUG names, no credential, and a pretty mode for terminals.
import { afterEach, describe, expect, test } from "bun:test";
import { SIMULATOR_CREDENTIALS, startSimulator } from "@vulnsub/simulators";
import {
  createWorkspace,
  FLUSHER_MAIN,
  spawnPollerProcess,
  spawnWithOutput,
  startFlusher,
  waitUntil,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;
const LEVELS = ["debug", "info", "warn", "error"];

let workspace: Workspace;

afterEach(async () => {
  await workspace.cleanup();
});

describe("logs", () => {
  test(
    "poller lines follow the contract",
    async () => {
      workspace = createWorkspace();
      const simulator = await startSimulator("rapid7", {
        seed: 2,
        assets: 6,
        findingsPerAsset: 2,
        rateLimit: { requests: 1000, windowMs: 1000 },
      });
      workspace.defer(() => simulator.stop());
      const flusher = await startFlusher(workspace);
      const poller = spawnPollerProcess(workspace, {
        VENDOR: "rapid7",
        RAPID7_BASE_URL: simulator.url,
        ...SIMULATOR_CREDENTIALS.rapid7,
        FLUSHER_ADDRESS: flusher.address,
        ONCE: "true",
        LOG_DEBUG: "http",
      });

      const exit = await poller.process.exited;
      const lines = poller.output().split("\n").filter(Boolean);
      const events = poller.process.events();

      expect(exit.code).toBe(0);
      expect(events.length).toBe(lines.length);
      for (const event of events) {
        expect(String(event.event)).toMatch(/^[a-z_]+(\.[a-z_]+)+$/);
        expect(LEVELS).toContain(String(event.level));
        expect(event.service).toBe("poller");
        expect(event.vendor).toBe("rapid7");
        expect(event.source).toBe("default");
        expect(event.job).toBe("rapid7:default");
      }
      const debug = events.filter((event) => event.level === "debug");
      expect(debug.length).toBeGreaterThan(0);
      expect(debug.every((event) => event.area === "http")).toBe(true);
      expect(debug.some((event) => event.event === "vendor.responded")).toBe(
        true,
      );
      expect(poller.output()).not.toContain(
        SIMULATOR_CREDENTIALS.rapid7.RAPID7_API_KEY,
      );
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "pretty format is not JSON",
    async () => {
      workspace = createWorkspace();
      const flusher = spawnWithOutput({
        name: "flusher",
        command: ["bun", FLUSHER_MAIN],
        env: {
          PATH: process.env.PATH ?? "",
          DATA_DIR: `${workspace.dir}/data`,
          FLUSHER_LISTEN: "127.0.0.1:0",
          METRICS_LISTEN: "off",
          LOG_FORMAT: "pretty",
        },
      });
      workspace.defer(() => flusher.child.stop(5_000));

      await waitUntil("flusher is serving", () =>
        flusher.output().includes("flusher is serving"),
      );

      expect(flusher.child.events().length).toBe(0);
      expect(flusher.output()).toContain("INFO");
    },
    TEST_TIMEOUT_MS,
  );
});
