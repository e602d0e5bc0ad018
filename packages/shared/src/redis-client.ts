import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { computeBackoffMs, sleep } from "./backoff.ts";
import { AbortedError, VulnsubError, throwIfAborted } from "./errors.ts";
import { createRepeatLimiter, errorFields, type Logger } from "./logger.ts";

export type { Redis } from "ioredis";

/** An ioredis client as createRedisClient configures it. */
export type RedisClient = Redis & {
  /** True while commands can run: the poller maps false to NOT_SERVING. */
  isReady(): boolean;
};

export interface RedisClientOptions {
  /** redis:// or rediss:// URL, for example redis://127.0.0.1:6379/0. */
  url: string;
  logger: Logger;
  /** Connection name shown by CLIENT LIST and in log lines. */
  name?: string;
  /** A command without a reply within this time fails; default 2000. */
  commandTimeoutMs?: number;
  /** Minimum time between two `redis.disconnected` lines; default 30000. */
  logIntervalMs?: number;
}

/**
 * Creates an ioredis client that fails fast while Redis is down and
 * reconnects forever on its own.
 *
 * - No offline queue: a command issued while disconnected fails at once.
 *   A command in flight when the connection drops fails instead of being
 *   re-sent later, so callers decide which to retry. acquire() waits and
 *   retries, and never proceeds without a permit.
 * - Reconnects forever with jittered backoff capped at 2 s.
 * - Logs `redis.disconnected` (warn) at most once per logIntervalMs while
 *   down, with the latest error, and `redis.reconnected` with the outage
 *   length when the connection is ready again.
 */
export function createRedisClient(options: RedisClientOptions): RedisClient {
  const logger = options.logger.child({ area: "redis" });
  const client = new Redis(options.url, {
    connectionName: options.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 2000,
    retryStrategy: (times) =>
      Math.max(
        100,
        computeBackoffMs(Math.min(times, 10), { baseMs: 100, maxMs: 2000 }),
      ),
  });
  watchConnection(client, logger, options.logIntervalMs ?? 30_000);
  return Object.assign(client, { isReady: () => client.status === "ready" });
}

function watchConnection(client: Redis, logger: Logger, intervalMs: number) {
  const repeat = createRepeatLimiter(intervalMs);
  let lastError: unknown = null;
  let downSinceMs: number | null = null;
  let attempts = 0;

  // Without an "error" listener an EventEmitter error would crash the
  // process; the error is reported with the next disconnected line.
  client.on("error", (error: unknown) => {
    lastError = error;
  });
  // "reconnecting" follows every lost connection and failed attempt, but
  // not quit() or disconnect(), which are not outages.
  client.on("reconnecting", () => {
    downSinceMs ??= performance.now();
    attempts++;
    if (!repeat.allow("redis.disconnected")) return;
    logger.warn(
      {
        event: "redis.disconnected",
        attempts,
        downMs: Math.round(performance.now() - downSinceMs),
        suppressed: repeat.takeSuppressed("redis.disconnected"),
        ...(lastError ? errorFields(lastError) : {}),
      },
      "redis connection lost; reconnecting",
    );
  });
  client.on("ready", () => {
    everReady.add(client);
    if (downSinceMs === null) return;
    logger.info(
      {
        event: "redis.reconnected",
        attempts,
        downMs: Math.round(performance.now() - downSinceMs),
      },
      "redis connection ready again",
    );
    downSinceMs = null;
    attempts = 0;
    lastError = null;
    repeat.reset("redis.disconnected");
  });
}

/** A Lua script from src/lua, run by EVALSHA. */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

/** Reads `src/lua/<name>.lua` once, at module load of its user. */
export function loadLuaScript(name: string): LuaScript {
  const source = readFileSync(join(import.meta.dir, "lua", `${name}.lua`), {
    encoding: "utf8",
  });
  const sha1 = createHash("sha1").update(source).digest("hex");
  return { name, source, sha1 };
}

/**
 * Runs a script in one round trip with EVALSHA. When Redis does not have
 * it cached (first use, restart, SCRIPT FLUSH), it loads the script and
 * runs EVALSHA again.
 */
export async function runLuaScript(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha1, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) {
      throw error;
    }
    await redis.script("LOAD", script.source);
    return await redis.evalsha(script.sha1, keys.length, ...keys, ...args);
  }
}

/** The error for a script reply that matches none of its return codes. */
export function unexpectedReplyError(script: LuaScript, reply: unknown) {
  return new Error(
    `${script.name}.lua: unexpected reply ${JSON.stringify(reply)}`,
  );
}

// Reply errors that mean "Redis cannot serve right now", not a bug.
const TRANSIENT_REPLY_PREFIXES = [
  "LOADING",
  "BUSY",
  "MASTERDOWN",
  "TRYAGAIN",
  "READONLY",
  "CLUSTERDOWN",
];
const CONNECTION_MESSAGES = [
  "Connection is closed",
  "Stream isn't writeable",
  "Command timed out",
  "Command aborted",
  "Socket timeout",
  "connect ETIMEDOUT",
  "Connection closed while waiting",
];
const CONNECTION_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTCONN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * Tells connection loss, timeouts and transient server states apart from
 * errors a retry cannot fix (a wrong key type, a script bug).
 */
export function isRedisUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "ReplyError") {
    return TRANSIENT_REPLY_PREFIXES.some((prefix) =>
      error.message.startsWith(prefix),
    );
  }
  if (error.name === "MaxRetriesPerRequestError") return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_ERRNO.has(code)) return true;
  return CONNECTION_MESSAGES.some((text) => error.message.includes(text));
}

export interface RedisRetryOptions {
  redis: Redis;
  logger: Logger;
  /** Names the operation in logs and in the AbortedError message. */
  operation: string;
  signal?: AbortSignal;
}

// Clients seen ready at least once: their later outages are logged.
const everReady = new WeakSet<Redis>();
const unavailableLogs = new WeakMap<
  Redis,
  ReturnType<typeof createRepeatLimiter>
>();

/**
 * Runs `run` until it succeeds, retrying for as long as Redis is
 * unavailable (see isRedisUnavailableError) with backoff capped at 2 s, or
 * sooner when the connection becomes ready. Logs `redis.unavailable` at
 * most once per 30 s per client. Other errors pass through, a closed
 * client throws VulnsubError("redis_unavailable"), and the signal stops
 * the wait with AbortedError.
 */
export async function retryWhileRedisUnavailable<T>(
  run: () => Promise<T>,
  options: RedisRetryOptions,
): Promise<T> {
  const { redis, signal, operation } = options;
  const startedMs = performance.now();
  // A client still connecting at start-up is not an outage worth a log.
  if (redis.status === "ready") everReady.add(redis);
  if (!everReady.has(redis)) {
    await waitForReady(redis, 2000, signal, operation);
  }

  for (let attempt = 0; ; attempt++) {
    throwIfAborted(signal, operation);
    // After quit() or disconnect() the client never reconnects.
    if (redis.status === "end") {
      throw new VulnsubError(
        "redis_unavailable",
        `${operation}: redis client closed`,
      );
    }
    try {
      return await run();
    } catch (error) {
      if (!isRedisUnavailableError(error)) throw error;
      logUnavailable(options, error, performance.now() - startedMs);
    }

    const delayMs = Math.max(
      50,
      computeBackoffMs(Math.min(attempt, 10), { baseMs: 100, maxMs: 2000 }),
    );
    await waitForReady(redis, delayMs, signal, operation);
  }
}

function logUnavailable(
  options: RedisRetryOptions,
  error: unknown,
  waitedMs: number,
) {
  let repeat = unavailableLogs.get(options.redis);
  if (!repeat) {
    repeat = createRepeatLimiter(30_000);
    unavailableLogs.set(options.redis, repeat);
  }
  if (!repeat.allow("redis.unavailable")) return;
  options.logger.warn(
    {
      event: "redis.unavailable",
      operation: options.operation,
      durationMs: Math.round(waitedMs),
      suppressed: repeat.takeSuppressed("redis.unavailable"),
      ...errorFields(error),
    },
    `${options.operation}: redis unavailable; waiting for it to return`,
  );
}

/**
 * Waits `maxMs`, ending early when a disconnected client becomes ready.
 * A client that is ready already (a timeout or LOADING reply) waits the
 * full delay.
 */
function waitForReady(
  redis: Redis,
  maxMs: number,
  signal: AbortSignal | undefined,
  operation: string,
): Promise<void> {
  if (redis.status === "ready") return sleep(maxMs, signal, operation);
  if (signal?.aborted) {
    return Promise.reject(new AbortedError(operation, signal.reason));
  }

  return new Promise((resolve, reject) => {
    const cleanUp = () => {
      clearTimeout(timer);
      redis.off("ready", finish);
      signal?.removeEventListener("abort", onAbort);
    };
    const finish = () => {
      cleanUp();
      resolve();
    };
    const onAbort = () => {
      cleanUp();
      reject(new AbortedError(operation, signal?.reason));
    };
    const timer = setTimeout(finish, maxMs);
    redis.once("ready", finish);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
