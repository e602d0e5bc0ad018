// Shared pieces of the coordination tests: Redis prefixes and cleanup, a
// private redis-server for outage tests, child processes and their record
// files, and a logger that keeps its lines for assertions.
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { Subprocess } from "bun";
import type { Redis } from "ioredis";
import { createLogger, type Logger } from "../src/logger.ts";

// scripts/test.ts sets REDIS_URL, to a private redis-server when none
// answers on 6379.
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Returns a key prefix that no other test or run uses. */
export function uniquePrefix(name: string): string {
  const random = Math.random().toString(36).slice(2, 8);
  return `vulnsub-test:${name}:${process.pid}:${random}`;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(redis: Redis, prefix: string) {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

const tempDirs: string[] = [];

/** Creates a fresh folder under the system temp folder. */
export function createTempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `vulnsub-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/** Removes every folder createTempDir made; call it in afterAll. */
export function removeTempDirs() {
  for (const dir of tempDirs.splice(0)) {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Creates a logger that parses its JSON lines into `lines`. */
export function createMemoryLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { logger: createLogger({ service: "test", destination, level: "debug" }), lines };
}

export function eventsOf(lines: Record<string, unknown>[], event: string) {
  return lines.filter((line) => line.event === event);
}

/** Returns a TCP port that was free a moment ago. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own, never the one on 6379. */
export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILLs the server and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty; no-op while running. */
  start(): Promise<void>;
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await findFreePort();
  const dir = createTempDir("redis");
  let child: Subprocess | null = null;
  const own: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (!child) return;
      child.kill("SIGKILL");
      await child.exited;
      child = null;
    },
    async start() {
      if (child) return;
      child = Bun.spawn(
        ["redis-server", "--port", String(port), "--bind", "127.0.0.1",
          "--save", "", "--appendonly", "no", "--dir", dir],
        { stdout: "ignore", stderr: "ignore" },
      );
      try {
        await waitForPing(port, child);
      } catch (error) {
        await own.kill();
        throw error;
      }
    },
  };
  await own.start();
  return own;
}

async function waitForPing(port: number, child: Subprocess) {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) {
      throw new Error(`redis-server on port ${port} exited: ${child.exitCode}`);
    }
    if (await ping(port)) return;
    await Bun.sleep(50);
  }
  throw new Error(`redis-server on port ${port}: no PONG after 5 s`);
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.setTimeout(500);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(String(data).startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

type Fixture = Subprocess<"pipe", "ignore", "ignore" | "inherit">;
const children = new Set<Fixture>();

/** Spawns `bun fixtures/<name>.ts <config as JSON>`. */
export function spawnFixture(
  name: string,
  config: Record<string, unknown>,
): Fixture {
  const path = join(import.meta.dir, "fixtures", `${name}.ts`);
  const child = Bun.spawn(["bun", path, JSON.stringify(config)], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: process.env.TEST_CHILD_STDERR ? "inherit" : "ignore",
    env: { ...process.env, LOG_LEVEL: "warn" },
  });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

export interface RunTimes {
  startAtMs: number;
  runUntilMs: number;
}

/**
 * Starts fixtures that wait in waitForStart(). It waits until each one has
 * recorded "ready" in its file, then sends all of them the same start and
 * end times, so a slow machine's start-up time does not shorten the run.
 */
export async function startFixtures(
  started: { child: Fixture; outFile: string }[],
  runMs: number,
): Promise<RunTimes> {
  const isReady = (outFile: string) =>
    readRecords<{ kind: string }>(outFile).some((r) => r.kind === "ready");
  await waitFor(
    () => started.every(({ outFile }) => isReady(outFile)),
    30_000,
    "fixtures to be ready",
  );
  const startAtMs = Date.now() + 300;
  const times = { startAtMs, runUntilMs: startAtMs + runMs };
  for (const { child } of started) {
    child.stdin.write(`${JSON.stringify(times)}\n`);
    await child.stdin.end();
  }
  return times;
}

/**
 * Fixture side of startFixtures(): records "ready", reads the run times
 * from stdin and sleeps until the start.
 */
export async function waitForStart(outFile: string): Promise<RunTimes> {
  appendRecord(outFile, { kind: "ready", pid: process.pid });
  const reader = Bun.stdin.stream().getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const times = JSON.parse(text.split("\n")[0] ?? "{}") as RunTimes;
  await Bun.sleep(Math.max(0, times.startAtMs - Date.now()));
  return times;
}

/** SIGKILLs every fixture still running; call it in afterEach. */
export async function killFixtures() {
  const running = [...children];
  for (const child of running) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
  await Promise.all(running.map((child) => child.exited));
}

/** Reads a JSON Lines record file; a missing file has no records. */
export function readRecords<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as T);
}

/** Appends one record as a JSON line; used by the fixtures. */
export function appendRecord(path: string, record: Record<string, unknown>) {
  appendFileSync(path, `${JSON.stringify(record)}\n`);
}

/** Polls `condition` every 50 ms until it is true; throws after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs: number,
  what: string,
) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await Bun.sleep(50);
  }
}

/**
 * Returns the largest number of timestamps inside any half-open window
 * (t - windowUs, t], with all timestamps in microseconds.
 */
export function maxInWindow(timesUs: number[], windowUs: number): number {
  const sorted = [...timesUs].sort((a, b) => a - b);
  let max = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[start] as number) <= (sorted[end] as number) - windowUs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}
