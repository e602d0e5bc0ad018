// Finds a Redis for the demo and the tests, in this order:
// 1. REDIS_URL, when set and replying to PING;
// 2. redis://127.0.0.1:6379, when replying to PING;
// 3. a private `redis-server` on a free loopback port, with persistence
//    off and its working folder in a temp dir, stopped by `stop()` and
//    killed when this process exits.
// Without a reachable Redis or a redis-server binary it throws
// RedisNotFoundError, whose message tells how to install one.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

export interface RedisHandle {
  /** redis:// URL of the server to use. */
  url: string;
  /** Origin of the server, for the plan a script prints. */
  origin: "REDIS_URL" | "default" | "private";
  /** Stops a private server and removes its folder; no-op otherwise. */
  stop(): Promise<void>;
}

export interface EnsureRedisOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Skips REDIS_URL and 6379 and always starts a private server. */
  forcePrivate?: boolean;
  /** Receives one line per decision (for example "using REDIS_URL"). */
  log?: (line: string) => void;
}

export const INSTALL_REDIS_HINT =
  "redis-server not found and no Redis answers on 127.0.0.1:6379: " +
  "install it (Debian/Ubuntu: `sudo apt-get install redis-server`; " +
  "macOS: `brew install redis`) or set REDIS_URL";

export class RedisNotFoundError extends Error {
  constructor() {
    super(INSTALL_REDIS_HINT);
    this.name = "RedisNotFoundError";
  }
}

const DEFAULT_URL = "redis://127.0.0.1:6379";
const PING_TIMEOUT_MS = 1_000;
const START_TIMEOUT_MS = 10_000;

/** Returns a reachable Redis, starting a private one when needed. */
export async function ensureRedis(
  options: EnsureRedisOptions = {},
): Promise<RedisHandle> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const noop = async () => {};

  if (!options.forcePrivate && env.REDIS_URL) {
    const failure = await pingRedis(env.REDIS_URL);
    if (!failure) {
      log(`redis: using REDIS_URL ${redactUrl(env.REDIS_URL)}`);
      return { url: env.REDIS_URL, origin: "REDIS_URL", stop: noop };
    }
    log(
      `redis: REDIS_URL ${redactUrl(env.REDIS_URL)} is not reachable: ${failure}`,
    );
  }

  if (!options.forcePrivate && !(await pingRedis(DEFAULT_URL))) {
    log(`redis: using ${DEFAULT_URL}`);
    return { url: DEFAULT_URL, origin: "default", stop: noop };
  }

  const server = await startPrivateRedis();
  log(
    `redis: started private redis-server at ${server.url} (pid ${server.pid})`,
  );
  return server;
}

/** Sends PING; returns undefined on PONG, else the failure as text. */
export async function pingRedis(
  url: string,
  timeoutMs = PING_TIMEOUT_MS,
): Promise<string | undefined> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The socket error (ECONNREFUSED, timeout) arrives as an event; the
  // awaited call then fails with a generic "Connection is closed".
  let socketError: Error | undefined;
  client.on("error", (error: Error) => (socketError ??= error));
  try {
    await client.connect();
    const reply = await client.ping();
    return reply === "PONG" ? undefined : `unexpected reply ${reply}`;
  } catch (error) {
    const cause = socketError ?? error;
    return cause instanceof Error ? cause.message : String(cause);
  } finally {
    client.disconnect();
  }
}

interface PrivateRedis extends RedisHandle {
  pid: number;
}

/**
 * Starts `redis-server` on a free loopback port and waits for PING. A port
 * taken between the probe and the bind makes redis-server exit; the start
 * is then retried on another port, three times at most.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  if (!Bun.which("redis-server")) throw new RedisNotFoundError();

  let lastError = "";
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await findFreePort();
    const dir = mkdtempSync(join(tmpdir(), "vulnsub-redis-"));
    const child = spawnRedisServer(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const failure = await waitForPing(url, child);
    if (!failure) return privateHandle(url, child, dir);

    lastError = failure;
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`private redis-server failed to start: ${lastError}`);
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
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

function spawnRedisServer(port: number, dir: string): ChildProcess {
  return spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--logfile",
      "",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
}

async function waitForPing(
  url: string,
  child: ChildProcess,
): Promise<string | undefined> {
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + START_TIMEOUT_MS;
  let failure: string | undefined = "not started";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      return `redis-server exited with ${child.exitCode}: ${stderr.trim()}`;
    }
    failure = await pingRedis(url, 500);
    if (!failure) return undefined;
    await Bun.sleep(50);
  }
  return `no PONG within ${START_TIMEOUT_MS} ms: ${failure}`;
}

function privateHandle(
  url: string,
  child: ChildProcess,
  dir: string,
): PrivateRedis {
  // A plain exit (including process.exit after a signal handler) must not
  // leave the server behind; the handler can only act synchronously.
  const killOnExit = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, origin: "private", pid: child.pid ?? 0, stop };
}

/** Hides a password in a redis:// URL before it is printed. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

/** Deletes every key under `<prefix>:`, for example after a demo run. */
export async function deleteKeysWithPrefix(
  url: string,
  prefix: string,
): Promise<number> {
  if (!prefix) throw new Error("refusing to delete keys without a prefix");
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on("error", () => {});
  let deleted = 0;
  try {
    await client.connect();
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(
        cursor,
        "MATCH",
        `${prefix}:*`,
        "COUNT",
        500,
      );
      cursor = next;
      if (keys.length > 0) deleted += await client.del(...keys);
    } while (cursor !== "0");
  } finally {
    client.disconnect();
  }
  return deleted;
}
