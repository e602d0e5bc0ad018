import { afterEach, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { spawnService } from "../../scripts/lib/processes.ts";
import { planStart } from "../../scripts/lib/start-plan.ts";
import { formatTestSummary, parseBunTestSummary } from "../../scripts/test.ts";
import {
  pingRedis,
  startPrivateRedis,
} from "../../scripts/lib/ensure-redis.ts";

const REPO_DIR = resolve(import.meta.dir, "../..");
const settings = {
  vendors: "qualys,rapid7,tenable",
  numWorkers: 1,
  flusherListen: "127.0.0.1:50051",
  metricsListen: "127.0.0.1:9464",
};
const allCredentials = {
  QUALYS_USERNAME: "u",
  QUALYS_PASSWORD: "p",
  RAPID7_API_KEY: "k",
  TENABLE_ACCESS_KEY: "a",
  TENABLE_SECRET_KEY: "s",
};

describe("planStart", () => {
  test("plans one poller per vendor", () => {
    const plan = planStart(settings, allCredentials);
    expect(plan.pollers.map((p) => p.name)).toEqual([
      "poller-qualys-1",
      "poller-rapid7-1",
      "poller-tenable-1",
    ]);
    expect(plan.pollers[0]?.env.FLUSHER_ADDRESS).toBe("127.0.0.1:50051");
  });

  test("skips vendors without credentials", () => {
    const plan = planStart(settings, {
      RAPID7_API_KEY: "k",
      QUALYS_USERNAME: "u",
    });
    expect(plan.pollers.map((p) => p.vendor)).toEqual(["rapid7"]);
    expect(plan.skipped.find((s) => s.vendor === "qualys")?.missing).toEqual([
      "QUALYS_PASSWORD",
    ]);
  });

  test("accepts credentials from _FILE variables", () => {
    const plan = planStart(
      { ...settings, vendors: "tenable" },
      {
        TENABLE_ACCESS_KEY_FILE: "/run/secrets/a",
        TENABLE_SECRET_KEY_FILE: "/run/secrets/s",
      },
    );
    expect(plan.pollers).toHaveLength(1);
  });

  test("rejects when no vendor has credentials", () => {
    expect(() => planStart(settings, {})).toThrow(/no vendor to poll/);
  });

  test("rejects an unknown vendor", () => {
    expect(() =>
      planStart({ ...settings, vendors: "nessus" }, allCredentials),
    ).toThrow(/VENDORS/);
  });

  test("runs NUM_WORKERS pollers per vendor", () => {
    const plan = planStart(
      { ...settings, vendors: "rapid7", numWorkers: 3 },
      allCredentials,
    );
    expect(plan.pollers.map((p) => p.name)).toEqual([
      "poller-rapid7-1",
      "poller-rapid7-2",
      "poller-rapid7-3",
    ]);
  });

  test("gives each process its own metrics port", () => {
    const plan = planStart(settings, allCredentials);
    expect(plan.flusherEnv.METRICS_LISTEN).toBe("127.0.0.1:9464");
    expect(plan.pollers.map((p) => p.env.METRICS_LISTEN)).toEqual([
      "127.0.0.1:9465",
      "127.0.0.1:9466",
      "127.0.0.1:9467",
    ]);
  });

  test("builds REDIS_URL from REDIS_HOST and REDIS_PORT", () => {
    const plan = planStart(settings, {
      ...allCredentials,
      REDIS_HOST: "::1",
      REDIS_PORT: "6380",
    });
    expect(plan.flusherEnv.REDIS_URL).toBe("redis://[::1]:6380");
    expect(plan.pollers[0]?.env.REDIS_URL).toBe("redis://[::1]:6380");
  });

  test("connects to a wildcard listener over loopback", () => {
    const plan = planStart(
      { ...settings, flusherListen: "0.0.0.0:7000" },
      allCredentials,
    );
    expect(plan.pollers[0]?.env.FLUSHER_ADDRESS).toBe("127.0.0.1:7000");
  });

  test("plan text shows no secret", () => {
    const plan = planStart(settings, {
      ...allCredentials,
      REDIS_URL: "redis://:hunter2@127.0.0.1:6379",
    });
    expect(plan.describe().join("\n")).not.toContain("hunter2");
  });
});

describe("parseBunTestSummary", () => {
  test("reads pass fail and skip", () => {
    const output =
      "(pass) a\n\n 12 pass\n 1 skip\n 0 fail\n 30 expect() calls\n";
    const summary = parseBunTestSummary(output);
    expect(summary).toEqual({ passed: 12, failed: 0, skipped: 1, todo: 0 });
  });

  test("returns undefined without counts", () => {
    expect(parseBunTestSummary("error: no tests found")).toBeUndefined();
  });

  test("formats the closing line", () => {
    expect(
      formatTestSummary({ passed: 3, failed: 1, skipped: 0, todo: 0 }),
    ).toBe("3 passed, 1 failed");
    expect(
      formatTestSummary({ passed: 3, failed: 0, skipped: 2, todo: 1 }),
    ).toBe("3 passed, 0 failed, 3 skipped");
  });
});

describe("startPrivateRedis", () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  test("private server answers and stops", async () => {
    const server = await startPrivateRedis();
    stop = server.stop;
    expect(await pingRedis(server.url)).toBeUndefined();
    await server.stop();
    expect(await pingRedis(server.url)).toBeDefined();
  });
});

describe("bootstrap", () => {
  test("puts bun first on PATH", async () => {
    const result = await runBootstrap(["-e", "console.log(process.env.PATH)"]);
    const first = result.stdout.trim().split(":")[0] ?? "";
    expect(result.code).toBe(0);
    expect(Bun.which("bun", { PATH: first })).not.toBeNull();
  });

  test("passes the exit code through", async () => {
    const result = await runBootstrap(["-e", "process.exit(3)"]);
    expect(result.code).toBe(3);
  });

  test("forwards SIGTERM to the script", async () => {
    const script =
      'process.on("SIGTERM", () => process.exit(7)); console.log("ready"); setInterval(() => {}, 1000);';
    const result = await runBootstrap(["-e", script], (child) =>
      child.kill("SIGTERM"),
    );
    expect(result.code).toBe(7);
  });
});

/** Runs the bootstrap; `onReady` runs after the script printed a line. */
function runBootstrap(
  args: string[],
  onReady?: (child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("node", ["scripts/bootstrap.mjs", ...args], {
      cwd: REPO_DIR,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      const first = stdout === "";
      stdout += chunk.toString();
      if (first) onReady?.(child);
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout });
    });
  });
}

describe("spawnService failures", () => {
  test("missing program ends with 127", async () => {
    const texts: string[] = [];
    const service = spawnService({
      name: "missing",
      command: ["/nonexistent/vulnsub-program"],
      onText: (text) => texts.push(text),
    });
    const status = await service.exited;
    expect(service.pid).toBe(0);
    expect(status.code).toBe(127);
    expect(texts.join("\n")).toContain("ENOENT");
  });

  test("exit waits for buffered output", async () => {
    const service = spawnService({
      name: "short",
      command: ["bash", "-c", 'echo \'{"event":"probe.done"}\'; exit 3'],
    });
    const status = await service.exited;
    expect(status.code).toBe(3);
    expect(service.events().map((event) => event.event)).toEqual([
      "probe.done",
    ]);
  });
});
