// End-to-end: the real demo (simulators, flusher and pollers as child
// processes, real Redis) on a small dataset with compressed quotas.
import { afterEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  spawnService,
  type ServiceProcess,
} from "../../scripts/lib/processes.ts";
import type { DemoSummary } from "../../scripts/lib/demo-summary.ts";
import { verifyLog, type GroundTruthSet } from "../../scripts/verify-log.ts";

const REPO_DIR = resolve(import.meta.dir, "../..");
const SMALL_DEMO = [
  "--assets",
  "60",
  "--findings-per-asset",
  "4",
  "--page-size",
  "20",
  "--rate-limit",
  "6",
  "--rate-window-ms",
  "2000",
  "--timeout-ms",
  "200000",
];

let dataDir: string;
let demo: ServiceProcess | undefined;
let output: string[] = [];

afterEach(async () => {
  // SIGTERM lets the demo stop its own process groups.
  await demo?.stop(30_000);
  demo = undefined;
  output = [];
  rmSync(dataDir, { recursive: true, force: true });
});

describe("demo", () => {
  test("syncs every vendor exactly once", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vulnsub-demo-"));
    demo = startDemo(["--data-dir", dataDir, ...SMALL_DEMO]);
    const status = await demo.exited;
    const summary = readJson<DemoSummary>(join(dataDir, "summary.json"));
    const groundTruth = readJson<GroundTruthSet[]>(
      join(dataDir, "ground-truth.json"),
    );
    const result = await verifyLog({ logPath: summary.logPath, groundTruth });

    expect(status.code).toBe(0);
    expect(summary.completed).toBe(true);
    expect(groundTruth.map((set) => set.vendor).sort()).toEqual([
      "qualys",
      "rapid7",
      "tenable",
    ]);
    expect(result.lines).toBeGreaterThan(0);
    expect(result.invalid.count).toBe(0);
    expect(result.duplicated.count).toBe(0);
    expect(result.lost?.count).toBe(0);
    expect(result.unexpected?.count).toBe(0);
    for (const vendor of summary.vendors) {
      expect({ vendor: vendor.vendor, served: vendor.served ?? 0 }).not.toEqual(
        { vendor: vendor.vendor, served: 0 },
      );
      expect({
        vendor: vendor.vendor,
        exceeded: vendor.counters?.quota.windowsExceeded,
      }).toEqual({
        vendor: vendor.vendor,
        exceeded: 0,
      });
    }
  }, 300_000);

  test("SIGINT stops every process", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vulnsub-demo-"));
    // Ten pages per vendor at 3 requests per 2 s keep every poller busy
    // for several seconds, so SIGINT arrives mid-sync.
    demo = startDemo([
      "--data-dir",
      dataDir,
      "--assets",
      "200",
      "--findings-per-asset",
      "2",
      "--page-size",
      "20",
      "--rate-limit",
      "4",
      "--rate-window-ms",
      "2000",
    ]);
    await waitForPids(join(dataDir, "logs"), 7, 120_000);

    demo.signal("SIGINT");
    const status = await demo.exited;
    const pids = childPids(join(dataDir, "logs"));

    expect(status.code).toBe(130);
    expect(pids.length).toBeGreaterThanOrEqual(7);
    expect(pids.filter(isAlive)).toEqual([]);
  }, 300_000);
});

function startDemo(args: string[]): ServiceProcess {
  return spawnService({
    name: "demo",
    command: [process.execPath, "scripts/demo.ts", ...args],
    cwd: REPO_DIR,
    env: process.env,
    onText: (line) => output.push(line),
  });
}

/** Waits until the children's logs name `count` process ids. */
async function waitForPids(logDir: string, count: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && demo?.isRunning()) {
    if (existsSync(logDir) && childPids(logDir).length >= count) return;
    await Bun.sleep(100);
  }
  throw new Error(
    `fewer than ${count} processes logged:\n${output.join("\n")}`,
  );
}

/** Process ids logged by the demo's children (pino's pid field). */
function childPids(logDir: string): number[] {
  const pids = new Set<number>();
  for (const file of readdirSync(logDir)) {
    for (const line of readFileSync(join(logDir, file), "utf8").split("\n")) {
      const match = /"pid":(\d+)/.exec(line);
      if (match) pids.add(Number(match[1]));
    }
  }
  return [...pids];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}
