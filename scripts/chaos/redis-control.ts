// A private redis-server the chaos suite may kill: it listens on one free
// loopback port for the whole run, so a restart comes back at the same
// URL. Persistence is off, so a restart loses every key, as a Redis
// without AOF or RDB would after a crash. The suite never touches any
// other Redis (127.0.0.1:6379 included).
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { findFreePort, pingRedis } from "../lib/ensure-redis.ts";

export interface RedisControl {
  readonly url: string;
  readonly port: number;
  /** Working folder of the server (empty: persistence is off). */
  readonly dir: string;
  /** Starts the server and waits for PING; no-op when it runs. */
  start(): Promise<void>;
  /** SIGKILLs the server and waits for its exit. */
  kill(): Promise<void>;
  isRunning(): boolean;
  /** Starts after the first one, that is restarts. */
  restarts(): number;
  /** SIGTERM, then SIGKILL after 5 s; awaits the exit. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

/** Picks a free port and starts redis-server there, logging to logDir. */
export async function startRedisControl(options: {
  dir: string;
  logDir: string;
}): Promise<RedisControl> {
  if (!Bun.which("redis-server")) {
    throw new Error(
      "redis-server not found on PATH: the chaos suite starts its own " +
        "Redis (Debian/Ubuntu: apt-get install redis-server)",
    );
  }
  mkdirSync(options.dir, { recursive: true });
  const port = await findFreePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let runs = 0;

  const isRunning = () =>
    child !== undefined && child.exitCode === null && child.signalCode === null;

  const start = async () => {
    if (isRunning()) return;
    runs++;
    const logPath = join(options.logDir, `redis.run${runs}.log`);
    const started = spawnRedis(port, options.dir, logPath);
    child = started.child;
    exited = started.exited;
    await waitForPing(url, started.child);
  };

  const signal = async (name: NodeJS.Signals) => {
    if (!isRunning()) return;
    child?.kill(name);
    await exited;
  };

  const handle: RedisControl = {
    url,
    port,
    dir: options.dir,
    start,
    kill: () => signal("SIGKILL"),
    isRunning,
    restarts: () => Math.max(0, runs - 1),
    async stop() {
      const timer = setTimeout(() => child?.kill("SIGKILL"), 5_000);
      await signal("SIGTERM");
      clearTimeout(timer);
    },
  };
  process.once("exit", () => {
    if (isRunning()) child?.kill("SIGKILL");
  });
  await start();
  return handle;
}

function spawnRedis(port: number, dir: string, logPath: string) {
  const child = spawn(
    "redis-server",
    [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
      "--dir", dir,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = createWriteStream(logPath, { flags: "a" });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      log.end();
      resolve();
    });
    child.once("error", () => resolve());
  });
  return { child, exited };
}

async function waitForPing(url: string, child: ChildProcess) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let failure: string | undefined = "not started";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`redis-server at ${url} exited with ${child.exitCode}`);
    }
    failure = await pingRedis(url, 500);
    if (!failure) return;
    await Bun.sleep(50);
  }
  throw new Error(`redis-server at ${url}: no PONG within ${START_TIMEOUT_MS} ms: ${failure}`);
}
