// End-to-end: `scripts/start.ts` supervising a real flusher and poller
// against the Rapid7 simulator.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startSimulator, type SimulatorHandle } from "@vulnsub/simulators";
import { findFreePort } from "../../scripts/lib/ensure-redis.ts";
import {
  spawnService,
  type JsonEvent,
  type ServiceProcess,
} from "../../scripts/lib/processes.ts";
import { verifyLog } from "../../scripts/verify-log.ts";

const REPO_DIR = resolve(import.meta.dir, "../..");

let dataDir: string | undefined;
let simulator: SimulatorHandle | undefined;
let supervisor: ServiceProcess | undefined;

afterEach(async () => {
  await supervisor?.stop(30_000);
  await simulator?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  supervisor = undefined;
  simulator = undefined;
  dataDir = undefined;
});

describe("start", () => {
  test("restarts a killed poller", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vulnsub-start-"));
    simulator = await startSimulator("rapid7", {
      seed: 3,
      assets: 40,
      findingsPerAsset: 3,
    });
    const flusherPort = await findFreePort();
    supervisor = spawnService({
      name: "start",
      command: [process.execPath, "scripts/start.ts"],
      cwd: REPO_DIR,
      env: startEnv(dataDir, flusherPort, simulator.url),
    });

    const firstRun = await supervisor.waitForEvent(
      (e) => e.event === "process.started" && e.name === "poller-rapid7-1",
      30_000,
    );
    await supervisor.waitForEvent(
      (e) => e.event === "cycle.completed" && typeof e.written === "number",
      120_000,
    );
    process.kill(Number(firstRun.pid), "SIGKILL");
    const exited = await supervisor.waitForEvent(
      (e) => e.event === "process.exited" && e.name === "poller-rapid7-1",
      30_000,
    );
    const secondRun = await supervisor.waitForEvent(
      (e) =>
        e.event === "process.started" &&
        e.name === "poller-rapid7-1" &&
        e.run === 2,
      60_000,
    );

    expect(exited.signal).toBe("SIGKILL");
    expect(secondRun.pid).not.toBe(firstRun.pid);
  }, 240_000);

  test("SIGTERM stops every process", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vulnsub-start-"));
    simulator = await startSimulator("rapid7", {
      seed: 4,
      assets: 20,
      findingsPerAsset: 2,
    });
    const flusherPort = await findFreePort();
    supervisor = spawnService({
      name: "start",
      command: [process.execPath, "scripts/start.ts"],
      cwd: REPO_DIR,
      env: startEnv(dataDir, flusherPort, simulator.url),
    });
    await supervisor.waitForEvent(
      (e) => e.event === "cycle.completed" && typeof e.written === "number",
      120_000,
    );

    supervisor.signal("SIGTERM");
    const status = await supervisor.exited;
    const pids = loggedPids(supervisor.events());
    const result = await verifyLog({
      logPath: join(dataDir, "vulnerabilities.jsonl"),
    });

    expect(status.code).toBe(0);
    expect(
      supervisor.events().some((e) => e.event === "supervisor.stopped"),
    ).toBe(true);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(result.lines).toBeGreaterThan(0);
    expect(result.ok).toBe(true);
  }, 240_000);

  test("exits with a clear line without credentials", async () => {
    const result = Bun.spawnSync([process.execPath, "scripts/start.ts"], {
      cwd: REPO_DIR,
      env: { PATH: process.env.PATH ?? "", VENDORS: "qualys" },
    });
    const stderr = result.stderr.toString();
    expect(result.exitCode).toBe(1);
    expect(stderr).toContain("no vendor to poll");
    expect(stderr).toContain("QUALYS_USERNAME");
  });
});

function startEnv(
  dir: string,
  flusherPort: number,
  rapid7Url: string,
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    VENDORS: "rapid7",
    RAPID7_API_KEY: "demo-rapid7-key",
    RAPID7_BASE_URL: rapid7Url,
    RAPID7_PAGE_SIZE: "20",
    FLUSHER_LISTEN: `127.0.0.1:${flusherPort}`,
    METRICS_LISTEN: "127.0.0.1:0",
    DATA_DIR: dir,
    STATE_DIR: join(dir, "state"),
    REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    REDIS_KEY_PREFIX: `vulnsub-test-start-${process.pid}-${Date.now()}`,
    RATE_LIMIT_RPM: "600",
    POLL_INTERVAL_MS: "3600000",
    LOCK_STALE_MS: "5000",
  };
}

/** Returns every pid that appeared in the children's log lines. */
function loggedPids(events: readonly JsonEvent[]): number[] {
  const pids = events
    .map((e) => e.pid)
    .filter((pid): pid is number => typeof pid === "number");
  return [...new Set(pids)];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
